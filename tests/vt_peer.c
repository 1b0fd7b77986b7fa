/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vt-peer: a vtnet secondary in its own executable, for the driver's
 * multi-process tests. Built twice: vt-peer with the real driver and
 * vt-peer-origin with the field report's bug (a raw ops pointer in the
 * shared port).
 *
 *   vt-peer CMD RUNDIR REGION PORT QP COUNT [SIZE]
 *     tx    send COUNT packets of SIZE bytes (default 64)
 *     rx    receive COUNT packets (10 s at most)
 *     loop  send COUNT and receive them back, checking each stamp
 *     hold  claim QP and wait for SIGTERM
 *     serve claim QP and keep it; each SIGUSR1 runs one round of "loop"
 *           (COUNT packets, printed as "round=K sent=... received=...
 *           bad=..."), or of "tx" or "rx" with VT_PEER_ROUND=tx|rx; between
 *           rounds poll rx; SIGTERM ends it. The claim is held across
 *           whatever the port goes through.
 *
 * Prints "key=value" lines; exits 0 when the command's own checks hold.
 * VT_PEER_DROP_RAWIO=1 in the environment: run without CAP_SYS_RAWIO.
 */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

#include "vt_traffic.h"

volatile sig_atomic_t stop;
static volatile sig_atomic_t go;
static void on_term(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; go = 1; }

static void log_out(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	printf("log: %s\n", line);
	fflush(stdout);
}

/* VT_PEER_DROP_RAWIO=1: give up CAP_SYS_RAWIO (port I/O) for the test of a
 * secondary that may not reach a legacy device. No libcap: the raw call. */
static int drop_rawio(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[CAP_SYS_RAWIO / 32].effective &= ~(1u << (CAP_SYS_RAWIO % 32));
	d[CAP_SYS_RAWIO / 32].permitted &= ~(1u << (CAP_SYS_RAWIO % 32));
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	uint64_t sent = 0, got = 0, bad = 0;
	struct mpops_port_queue_stats rs, ts;
	struct mpops_region *r;
	struct mpops_pktpool *pool;
	struct mpops_port *p;
	const char *cmd;
	unsigned size = 64;
	uint64_t count;
	uint16_t qp;
	void *base;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mpops_log_set(log_out, NULL);
	if (argc < 7) {
		fprintf(stderr, "usage: vt-peer CMD RUNDIR REGION PORT QP COUNT [SIZE]\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGUSR1, on_usr1);
	if (getenv("VT_PEER_DROP_RAWIO") && (rc = drop_rawio()) < 0) {
		fprintf(stderr, "vt-peer: cannot drop CAP_SYS_RAWIO: %s\n", strerror(-rc));
		return 2;
	}
#ifdef VT_PEER_ORIGIN
	/* The expected crash must kill us, even under a sanitizer's handler. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
#endif
	cmd = argv[1];
	ao.runtime_dir = argv[2];
	qp = (uint16_t)atoi(argv[5]);
	count = strtoull(argv[6], NULL, 10);
	if (argc > 7)
		size = (unsigned)atoi(argv[7]);
	if ((rc = mpops_region_attach(argv[3], &ao, &r)) < 0)
		return 1;
	if ((rc = mpops_port_open(r, argv[4], &p)) < 0)
		return 1;
	rc = mpops_port_claim(p, qp);
	printf("claim=%d\n", rc);
	if (rc < 0)
		return 1;
	pool = mpops_port_pool(p);
	base = mpops_region_base(r);
	if (strcmp(cmd, "hold") == 0) {
		printf("holding\n");
		while (!stop)
			pause();
		goto out;
	}
	if (strcmp(cmd, "serve") == 0) {
		int round = 0;

		printf("holding\n");
		while (!stop) {
			struct mpops_pkt *pk[32];
			int n;

			if (go) {
				go = 0;
				sent = got = bad = 0;
				traffic(getenv("VT_PEER_ROUND") ? getenv("VT_PEER_ROUND") : "loop", p,
					base, qp, count, size, &sent, &got, &bad);
				printf("round=%d sent=%llu received=%llu bad=%llu\n", ++round,
				       (unsigned long long)sent, (unsigned long long)got,
				       (unsigned long long)bad);
				continue;
			}
			/* Idle: whatever arrives between rounds is counted as stray. */
			n = mpops_rx_burst(p, qp, pk, 32);
			for (int i = 0; i < n; i++)
				mpops_pkt_free(pool, pk[i]);
			if (n > 0)
				printf("stray=%d\n", n);
			usleep(1000);
		}
		goto out;
	}
	traffic(cmd, p, base, qp, count, size, &sent, &got, &bad);
out:
	mpops_port_stats_get(p, qp, &rs, &ts);
	printf("sent=%llu received=%llu bad=%llu rx_kicks=%llu tx_kicks=%llu rx_errors=%llu tx_errors=%llu audit=%d\n",
	       (unsigned long long)sent, (unsigned long long)got, (unsigned long long)bad,
	       (unsigned long long)rs.kicks, (unsigned long long)ts.kicks,
	       (unsigned long long)rs.errors, (unsigned long long)ts.errors,
	       mpops_audit(r, NULL, NULL, 0));
	mpops_port_close(p);
	mpops_region_detach(r);
	/* hold and serve: their rounds were reported line by line. */
	if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "serve") == 0)
		return 0;
	if (strcmp(cmd, "tx") == 0)
		return sent >= count ? 0 : 1;
	return got >= count && bad == 0 ? 0 : 1;
}
