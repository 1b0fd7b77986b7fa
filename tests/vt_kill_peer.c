/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vt-kill-peer: a vtnet secondary that dies by SIGKILL at a known point
 * inside the driver, for tests/test_vt_kill.c. Test-only: it reaches the
 * driver's private layout (to find a ring's page) and the library's test
 * points (lib/priv.h); nothing of it is in a product build.
 *
 *   vt-kill-peer RUNDIR REGION CMD [ARG]
 *
 * Every command claims queue pair 0 of port0 (a loopback backend sends back
 * what it gets on the same queue pair).
 *  - tx K: a tx burst of 32 whose packet K has its header on a page this
 *    process made inaccessible: vtnet_tx faults there, with K packets placed
 *    and none published, and the process SIGKILLs itself.
 *  - refill: send 100, wait until they are back in the rx used ring, make
 *    the rx avail ring's page read-only, receive: the refill faults at its
 *    first avail entry, with one descriptor taken and written.
 *  - alloc: send 100 (from a pool handle of its own), wait, leave 80
 *    buffers in the port's pool handle's cache, arm the pool's test point
 *    "pktring.refill.copied", receive: the refill's second batch of 36
 *    finds 16 in the cache and dies inside the pool's lock, the first batch
 *    of 64 descriptors taken and not published.
 *  - run N: send N and receive them back (3 s at most), then one empty tx
 *    burst a moment later (the tx cleanup), print "sent S received R".
 * Prints "dying at WHERE" before it dies; exits 3 if it did not.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "priv.h"
#include "vtnet_priv.h"

#define PAGE 4096u
#define FRAME 64

static const char *dying = "?";

static void say(const char *s)
{
	ssize_t rc = write(1, s, strlen(s));

	(void)rc;
}

static void on_fault(int sig)
{
	(void)sig;
	say("dying at ");
	say(dying);
	say("\n");
	raise(SIGKILL);
}

static void die_at_point(const char *point)
{
	if (strcmp(point, "pktring.refill.copied") == 0)
		on_fault(0);
}

static uintptr_t page_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
}

static void frame_fill(void *base, struct mpops_pkt *m, unsigned i)
{
	unsigned char *d = mpops_pkt_data(base, m);

	memset(d, 0xff, 6);
	memset(d + 6, 0x02, 6);
	memset(d + 12, (int)i, FRAME - 12);
	m->data_len = FRAME;
	m->pkt_len = FRAME;
}

/* Send @n frames from @pool (bursts of 32). @return how many went. */
static unsigned send_n(struct mpops_port *port, struct mpops_pktpool *pool, unsigned n)
{
	void *base = mpops_pktpool_base(pool);
	struct mpops_pkt *m[32];
	unsigned sent = 0;

	while (sent < n) {
		unsigned k = n - sent < 32 ? n - sent : 32;
		int got;

		if (mpops_pkt_alloc_bulk(pool, m, k) < 0)
			break;
		for (unsigned i = 0; i < k; i++)
			frame_fill(base, m[i], sent + i);
		got = mpops_tx_burst(port, 0, m, (uint16_t)k);
		if (got < (int)k)
			mpops_pkt_free_bulk(pool, m + got, k - (unsigned)got);
		sent += (unsigned)got;
		if (got == 0)
			break;
	}
	return sent;
}

/* Wait until @n entries are in the rx used ring, not consumed (2 s). */
static int wait_used(struct mpops_port *port, unsigned n)
{
	for (int i = 0; i < 2000; i++) {
		struct vtnet_vq_info vi;

		if (vtnet_vq_info_get(port, 0, &vi) == 0 &&
		    (uint16_t)(vi.used_idx - vi.last_used) >= n)
			return 0;
		usleep(1000);
	}
	return -1;
}

static int cmd_tx(struct mpops_port *port, struct mpops_pktpool *pool, unsigned k)
{
	void *base = mpops_pktpool_base(pool);
	struct mpops_pkt *all[64], *burst[32], *trap;
	uintptr_t tp;
	unsigned n = 0;

	if (k >= 32 || mpops_pkt_alloc_bulk(pool, all, 64) < 0)
		return 2;
	for (unsigned i = 0; i < 64; i++)
		frame_fill(base, all[i], i);
	/* The trap: a packet whose header and data lie on one page that no
	 * other packet of the burst touches. */
	trap = all[0];
	tp = page_of((char *)mpops_pkt_data(base, trap) - 12);
	if (page_of((char *)mpops_pkt_data(base, trap) + FRAME) != tp)
		trap = all[1], tp = page_of((char *)mpops_pkt_data(base, trap) - 12);
	for (unsigned i = 0; i < 64 && n < 31; i++) {
		char *d = mpops_pkt_data(base, all[i]);

		if (all[i] == trap || page_of(d - 12) == tp || page_of(d + FRAME) == tp)
			continue;
		burst[n < k ? n : n + 1] = all[i];
		all[i] = NULL;
		n++;
	}
	if (n < 31)
		return 2;
	burst[k] = trap;
	for (unsigned i = 0; i < 64; i++)
		if (all[i] && all[i] != trap)
			mpops_pkt_free(pool, all[i]);
	if (mprotect((void *)tp, PAGE, PROT_NONE) < 0) {
		perror("mprotect");
		return 2;
	}
	dying = "tx packet";
	printf("armed tx at packet %u\n", k);
	fflush(stdout);
	mpops_tx_burst(port, 0, burst, 32);
	return 3;
}

static int cmd_refill(struct mpops_port *port, struct mpops_pktpool *pool)
{
	struct vtnet_port *p = vtnet_of(port);
	struct mpops_pkt *m[128];
	void *avail = p->vq[0].avail;

	if ((uintptr_t)avail % PAGE || send_n(port, pool, 100) != 100 || wait_used(port, 100) < 0)
		return 2;
	if (mprotect(avail, PAGE, PROT_READ) < 0) {
		perror("mprotect");
		return 2;
	}
	dying = "rx refill";
	printf("armed rx refill\n");
	fflush(stdout);
	mpops_rx_burst(port, 0, m, 128);
	return 3;
}

/* Buffers in this process's pool handles' caches (the census's count). */
static unsigned cached_here(struct mpops_port *port)
{
	struct mpops_pktpool_census c = { .sz = sizeof(c) };

	if (mpops_port_pool_census(port, &c) < 0)
		return 0;
	for (uint32_t i = 0; i < c.nprocs; i++)
		if (c.procs[i].pid == getpid())
			return c.procs[i].cached;
	return 0;
}

static int cmd_alloc(struct mpops_port *port, struct mpops_pktpool *pool)
{
	static struct mpops_pkt *held[2048];
	struct mpops_pktpool *pp = mpops_port_pool(port);
	struct mpops_pkt *m[128];
	unsigned cached, nheld = 0;

	if (send_n(port, pool, 100) != 100 || wait_used(port, 100) < 0) {
		fprintf(stderr, "vt-kill-peer: the loopback did not return 100 packets\n");
		return 2;
	}
	/* Leave 80 in the port's handle's cache (tx cleanup freed into it, how
	 * many depends on when the device completed): an allocation from a
	 * cache with too few refills it to half its 256 first. Taken in steps
	 * of at most 128 until 80 are left; what is taken is held until the
	 * death. */
	mpops_pktpool_close(pool);
	for (int step = 0; step < 16 && (cached = cached_here(port)) != 80; step++) {
		unsigned take = cached < 80 ? cached + 1 : cached - 80;

		if (cached < 80 && nheld >= 80 - cached) {
			/* Too few: give some of what it holds back to the cache
			 * (taking more would only refill it to 128 again). */
			nheld -= 80 - cached;
			mpops_pkt_free_bulk(pp, held + nheld, 80 - cached);
			continue;
		}
		if (take > 128)
			take = 128;
		if (nheld + take > sizeof(held) / sizeof(held[0]) ||
		    mpops_pkt_alloc_bulk(pp, held + nheld, take) < 0) {
			fprintf(stderr, "vt-kill-peer: cannot take %u buffers (%u cached)\n", take,
				cached);
			return 2;
		}
		nheld += take;
	}
	if ((cached = cached_here(port)) != 80) {
		fprintf(stderr, "vt-kill-peer: %u buffers cached, not 80\n", cached);
		return 2;
	}
	dying = "pktring.refill.copied";
	mpops__test_point_hook = die_at_point;
	printf("armed alloc\n");
	fflush(stdout);
	mpops_rx_burst(port, 0, m, 128);
	mpops__test_point_hook = NULL;
	return 3;
}

static int cmd_run(struct mpops_port *port, struct mpops_pktpool *pool, unsigned n)
{
	struct timespec t0, t;
	struct mpops_pkt *m[32];
	unsigned sent = 0, got = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int r;

		/* At most 64 on their way: the loopback drops what finds no rx
		 * buffer. */
		if (sent < n && sent - got < 64)
			sent += send_n(port, pool, n - sent < 32 ? n - sent : 32);
		while ((r = mpops_rx_burst(port, 0, m, 32)) > 0) {
			got += (unsigned)r;
			mpops_pkt_free_bulk(pool, m, (unsigned)r);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (got < n && t.tv_sec - t0.tv_sec < 3);
	usleep(20000);
	mpops_tx_burst(port, 0, m, 0);
	printf("sent %u received %u\n", sent, got);
	return 0;
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts o = { .sz = sizeof(o) };
	struct mpops_region *r = NULL;
	struct mpops_pktpool *pool;
	struct mpops_port *port;
	struct sigaction sa = { .sa_handler = on_fault };
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: vt-kill-peer RUNDIR REGION tx K|refill|alloc|run N\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGSEGV, &sa, NULL);
	o.runtime_dir = argv[1];
	if ((rc = mpops_region_attach(argv[2], &o, &r)) < 0 ||
	    (rc = mpops_port_open(r, "port0", &port)) < 0 ||
	    (rc = mpops_port_claim(port, 0)) < 0 || (rc = mpops_port_pool_open(port, &pool)) < 0) {
		printf("set-up failed: %s\n", strerror(-rc));
		return 1;
	}
	if (strcmp(argv[3], "tx") == 0 && argc > 4)
		rc = cmd_tx(port, pool, (unsigned)atoi(argv[4]));
	else if (strcmp(argv[3], "refill") == 0)
		rc = cmd_refill(port, pool);
	else if (strcmp(argv[3], "alloc") == 0)
		rc = cmd_alloc(port, pool), pool = NULL;	/* closed there */
	else if (strcmp(argv[3], "run") == 0 && argc > 4)
		rc = cmd_run(port, pool, (unsigned)atoi(argv[4]));
	else
		rc = 2;
	if (rc == 3)
		printf("never reached %s\n", dying);
	mpops_pktpool_close(pool);
	mpops_port_close(port);
	mpops_region_detach(r);
	return rc;
}
