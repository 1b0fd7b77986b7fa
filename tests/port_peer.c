/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * port-peer: a secondary of the port layer's tests, in its own executable
 * (with its own copy of the "loop" test driver).
 *
 *   port-peer CMD RUNDIR REGION PORT QP COUNT
 *     loop    claim QP, send COUNT packets and take them back
 *     serve   claim QP and keep it; each SIGUSR1 runs one round of "loop"
 *             ("round=K received=N"); SIGTERM ends it
 *     spin    claim QP, print "spinning", then burst without end
 *     hold    claim QP, transmit COUNT packets (they stay on the loop's
 *             ring), allocate 40 more and free 16 of them (into its
 *             cache), print "holding", and wait to be killed
 *     dietx   claim QP, transmit a burst of 32 and die by SIGKILL inside
 *             it, after the driver placed COUNT of them
 *     stoptx  the same, but stop there (SIGSTOP) instead of dying
 *     ro      attach read-only and try to claim QP
 *     start   try to start the port (not ours to start)
 *     primary be the primary instead: create the region and a started loop
 *             port of QP queue pairs, print "ready", keep them until SIGTERM
 *     watch   claim QP, print "watching", burst until the primary is gone
 *             (mpops_region_on_primary_exit), then print when that was
 *             ("gone_ns=", CLOCK_MONOTONIC) and what the port says now
 *
 * Log lines go to stdout as "log: ...", results as key=value lines.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "port_loop.h"

static volatile sig_atomic_t stop, go;
static unsigned die_after;
static int die_sig = SIGKILL;

static void die_in_tx(unsigned placed)
{
	if (placed == die_after) {
		printf("%s after %u\n", die_sig == SIGKILL ? "dying" : "stopping", placed);
		fflush(stdout);
		raise(die_sig);
	}
}

/* Allocate @n packets of 64 bytes and transmit them in bursts of 32. */
static int send_some(struct mpops_port *p, uint16_t qp, unsigned n)
{
	struct mpops_pkt *pk[32];
	unsigned sent = 0;

	while (sent < n) {
		unsigned k = n - sent < 32 ? n - sent : 32;
		int t;

		if (mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, k) < 0)
			return -1;
		for (unsigned i = 0; i < k; i++)
			pk[i]->data_len = pk[i]->pkt_len = 64;
		t = mpops_tx_burst(p, qp, pk, (uint16_t)k);
		if (t != (int)k)
			return -1;
		sent += k;
	}
	return 0;
}
static void on_term(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; go = 1; }

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* primary: the region and a started loop port of @nb_qp queue pairs until SIGTERM. */
static int be_primary(const char *rundir, const char *region, const char *port, uint16_t nb_qp)
{
	struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir };
	struct mpops_region *r;
	struct mpops_port *p;

	if (mpops_region_create(region, &o, &r) < 0)
		return 1;
	if (loop_port_create(r, port, nb_qp, &p) < 0 || mpops_port_start(p) < 0) {
		mpops_region_detach(r);
		return 1;
	}
	printf("ready\n");
	while (!stop)
		pause();
	mpops_port_close(p);
	mpops_region_detach(r);
	return 0;
}

static volatile long long gone_ns;

static void on_primary_exit(struct mpops_region *r, void *arg)
{
	(void)r;
	(void)arg;
	gone_ns = now_ns();
}

/* watch: burst on @qp until the primary is gone; then report. 0 if all
 * holds: the exit fd readable, link down, bursts 0, the check -ENOTCONN. */
static int watch(struct mpops_region *r, struct mpops_port *p, uint16_t qp)
{
	struct pollfd pf = { .fd = mpops_region_primary_exit_fd(r), .events = POLLIN };
	struct mpops_port_link l;
	struct mpops_pkt *pk[32];
	int n, rx, tx, fd_ready;

	if (mpops_region_on_primary_exit(r, on_primary_exit, NULL) < 0)
		return 0;
	printf("watching\n");
	while (!gone_ns && !stop) {
		n = mpops_rx_burst(p, qp, pk, 32);
		if (n > 0)
			mpops_pkt_free_bulk(mpops_port_pool(p), pk, (unsigned)n);
		usleep(100);
	}
	fd_ready = poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
	mpops_port_link_get(p, &l);
	rx = mpops_rx_burst(p, qp, pk, 32);
	n = mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 8) == 0 ? 8 : 0;
	tx = mpops_tx_burst(p, qp, pk, (uint16_t)n);
	if (tx >= 0 && tx < n)
		mpops_pkt_free_bulk(mpops_port_pool(p), pk + tx, (unsigned)(n - tx));
	printf("gone_ns=%lld link=%d rx=%d tx=%d fd=%d check=%d\n", gone_ns, l.up, rx, tx,
	       fd_ready, mpops_region_primary_check(r));
	return fd_ready && !l.up && rx == 0 && tx == 0 && n == 8;
}

static void log_out(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	printf("log: %s\n", line);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	struct mpops_port_queue_stats rx, tx;
	struct mpops_region *r;
	struct mpops_port *p;
	const char *cmd;
	unsigned count;
	uint16_t qp;
	int rc, ok = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mpops_log_set(log_out, NULL);
	if (argc < 7) {
		fprintf(stderr, "usage: port-peer CMD RUNDIR REGION PORT QP COUNT\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGUSR1, on_usr1);
	cmd = argv[1];
	ao.runtime_dir = argv[2];
	qp = (uint16_t)atoi(argv[5]);
	count = (unsigned)atoi(argv[6]);
	if (strcmp(cmd, "primary") == 0)
		return be_primary(argv[2], argv[3], argv[4], qp);
	if (strcmp(cmd, "ro") == 0)
		ao.flags = MPOPS_ATTACH_F_READONLY;
	if ((rc = mpops_region_attach(argv[3], &ao, &r)) < 0)
		return 1;
	if ((rc = mpops_port_open(r, argv[4], &p)) < 0) {
		printf("open=%d\n", rc);
		return 1;
	}
	if (strcmp(cmd, "start") == 0) {
		printf("start=%d\n", mpops_port_start(p));
		goto out;
	}
	rc = mpops_port_claim(p, qp);
	printf("claim=%d\n", rc);
	if (rc < 0) {
		ok = strcmp(cmd, "ro") == 0;
		goto out;
	}
	if (strcmp(cmd, "loop") == 0) {
		rc = loop_traffic(p, qp, count);
		printf("received=%d\n", rc);
		ok = rc == (int)count;
	} else if (strcmp(cmd, "serve") == 0) {
		int round = 0;

		printf("holding\n");
		while (!stop) {
			if (go) {
				go = 0;
				printf("round=%d received=%d\n", ++round, loop_traffic(p, qp, count));
			}
			usleep(1000);
		}
	} else if (strcmp(cmd, "watch") == 0) {
		ok = watch(r, p, qp);
	} else if (strcmp(cmd, "hold") == 0) {
		struct mpops_pkt *pk[40];

		if (send_some(p, qp, count) < 0 ||
		    mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 40) < 0)
			return 1;
		mpops_pkt_free_bulk(mpops_port_pool(p), pk + 24, 16);
		printf("holding\n");
		for (;;)
			pause();
	} else if (strcmp(cmd, "dietx") == 0 || strcmp(cmd, "stoptx") == 0) {
		die_after = count;
		die_sig = cmd[0] == 's' ? SIGSTOP : SIGKILL;
		loop_tx_hook = die_in_tx;
		send_some(p, qp, 32);
		printf("did not die\n");
		return 1;
	} else if (strcmp(cmd, "spin") == 0) {
		struct mpops_pkt *pk[32];

		printf("spinning\n");
		for (;;) {
			int n = mpops_rx_burst(p, qp, pk, 32);

			if (n > 0)
				mpops_tx_burst(p, qp, pk, (uint16_t)n);
			else if (mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 8) == 0)
				mpops_tx_burst(p, qp, pk, 8);
		}
	}
out:
	if (mpops_port_stats_get(p, qp, &rx, &tx) == 0)
		printf("rx_packets=%llu tx_packets=%llu tx_kicks=%llu\n",
		       (unsigned long long)rx.packets, (unsigned long long)tx.packets,
		       (unsigned long long)tx.kicks);
	mpops_port_close(p);
	mpops_region_detach(r);
	return ok ? 0 : 1;
}
