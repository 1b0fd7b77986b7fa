/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-pps-worker: the process that moves packets through our
 * virtio-net driver for mpops-bench-pps (and for bench/pps-instructions.sh
 * under callgrind). The same loop runs in the primary or in a secondary, so
 * the two differ only in the role.
 *
 *   mpops-bench-pps-worker primary --rundir DIR --region NAME --socket PATH
 *       [--qps N] [--mergeable on|off] [--event-idx on|off] [--pool N]
 *       [--cpu N] (--hold | LOOP)
 *   mpops-bench-pps-worker secondary --rundir DIR --region NAME [--qp Q]
 *       [--cpu N] LOOP
 *
 *   LOOP: --mode txonly|rxonly|loopback [--size BYTES] [--burst N]
 *         ([--go-at T] --start-at T --stop-at T | --warmup S --window S |
 *          --count N | --polls N)
 *
 * The primary creates the region and port "pps0" (vhost-user client of
 * PATH) and starts it; with --hold it only waits for SIGTERM, so that
 * secondaries can use the port. LOOP counts packets between the
 * CLOCK_MONOTONIC times T (after a warm-up: traffic starts at "ready", or
 * at --go-at, so that several workers start up without polling processes
 * in their way, then run side by side), or until N
 * packets moved (tx for txonly, rx otherwise), or until N rx bursts were
 * made (to cost an empty poll under callgrind); or from "ready" on: a
 * warm-up of S seconds, then a window of S seconds. Then it prints:
 *
 *   ready pid=P
 *   result packets=N seconds=S mpps=X tx=N rx=N tx_kicks=N rx_kicks=N
 *          rx_calls=N rx_empty=N tx_calls=N tx_short=N late=0|1
 *
 * Loops, as testpmd's engines: txonly allocates a burst, writes a 42-byte
 * Ethernet/IPv4/UDP header into each packet and transmits it (what does
 * not fit goes back to the pool); rxonly receives a burst and frees it;
 * loopback does both in each pass (as testpmd's flowgen) and counts what
 * comes back.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

#define PORT_NAME "pps0"
#define MAX_BURST 64
/* Loop passes between two looks at the clock. */
#define CLOCK_EVERY 16u

enum mode { M_TXONLY, M_RXONLY, M_LOOPBACK };

struct opts {
	int primary, hold;
	const char *rundir, *region, *socket;
	unsigned qps, qp, pool, burst, size;
	int mergeable, event_idx, cpu;
	enum mode mode;
	double go_at, start_at, stop_at;
	double warmup_s, window_s;	/* relative to ready, instead of the times */
	unsigned long long count, polls;
	unsigned timeout_s;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpops-bench-pps-worker primary --rundir DIR --region NAME --socket PATH\n"
		"           [--qps N] [--mergeable on|off] [--event-idx on|off] [--pool N]\n"
		"           [--cpu N] (--hold | LOOP)\n"
		"       mpops-bench-pps-worker secondary --rundir DIR --region NAME [--qp Q]\n"
		"           [--cpu N] LOOP\n"
		"  LOOP: --mode txonly|rxonly|loopback [--size BYTES] [--burst N]\n"
		"        ([--go-at T] --start-at T --stop-at T | --warmup S --window S |\n"
		"         --count N | --polls N)\n"
		"        T: CLOCK_MONOTONIC seconds; --go-at: sleep until then before moving\n"
		"        packets; --polls: N rx bursts, found empty or not\n"
		"  --timeout S   exit after S seconds whatever happens (default 120)\n");
}

static int on_off(const char *s, int *out)
{
	if (!strcmp(s, "on"))
		*out = 1;
	else if (!strcmp(s, "off"))
		*out = -1;
	else
		return -EINVAL;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "rundir", required_argument, NULL, 'r' },
		{ "region", required_argument, NULL, 'R' },
		{ "socket", required_argument, NULL, 's' },
		{ "qps", required_argument, NULL, 'n' },
		{ "qp", required_argument, NULL, 'q' },
		{ "mergeable", required_argument, NULL, 'M' },
		{ "event-idx", required_argument, NULL, 'E' },
		{ "pool", required_argument, NULL, 'p' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "hold", no_argument, NULL, 'H' },
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 'z' },
		{ "burst", required_argument, NULL, 'b' },
		{ "go-at", required_argument, NULL, 'G' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "window", required_argument, NULL, 'X' },
		{ "start-at", required_argument, NULL, 'S' },
		{ "stop-at", required_argument, NULL, 'T' },
		{ "count", required_argument, NULL, 'N' },
		{ "polls", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, have_mode = 0;

	if (argc < 2 || (strcmp(argv[1], "primary") && strcmp(argv[1], "secondary"))) {
		usage(stderr);
		return -EINVAL;
	}
	o->primary = !strcmp(argv[1], "primary");
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': o->rundir = optarg; break;
		case 'R': o->region = optarg; break;
		case 's': o->socket = optarg; break;
		case 'n': o->qps = (unsigned)atoi(optarg); break;
		case 'q': o->qp = (unsigned)atoi(optarg); break;
		case 'M':
			if (on_off(optarg, &o->mergeable) < 0)
				goto bad;
			break;
		case 'E':
			if (on_off(optarg, &o->event_idx) < 0)
				goto bad;
			break;
		case 'p': o->pool = (unsigned)atoi(optarg); break;
		case 'c': o->cpu = atoi(optarg); break;
		case 'H': o->hold = 1; break;
		case 'm':
			have_mode = 1;
			if (!strcmp(optarg, "txonly"))
				o->mode = M_TXONLY;
			else if (!strcmp(optarg, "rxonly"))
				o->mode = M_RXONLY;
			else if (!strcmp(optarg, "loopback"))
				o->mode = M_LOOPBACK;
			else
				goto bad;
			break;
		case 'z': o->size = (unsigned)atoi(optarg); break;
		case 'b': o->burst = (unsigned)atoi(optarg); break;
		case 'G': o->go_at = atof(optarg); break;
		case 'W': o->warmup_s = atof(optarg); break;
		case 'X': o->window_s = atof(optarg); break;
		case 'S': o->start_at = atof(optarg); break;
		case 'T': o->stop_at = atof(optarg); break;
		case 'N': o->count = strtoull(optarg, NULL, 10); break;
		case 'P': o->polls = strtoull(optarg, NULL, 10); break;
		case 't': o->timeout_s = (unsigned)atoi(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!o->rundir || !o->region || (o->primary && !o->socket) || (!o->primary && o->hold) ||
	    (!o->hold && (!have_mode || (o->count == 0 && o->polls == 0 && !(o->window_s > 0) &&
				    !(o->stop_at > o->start_at)))) ||
	    o->burst == 0 || o->burst > MAX_BURST || o->size < 14 || o->size > 9000 ||
	    o->qps == 0 || o->qps > VTNET_MAX_QP || o->qp >= VTNET_MAX_QP) {
		fprintf(stderr, "mpops-bench-pps-worker: missing or bad options\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "mpops-bench-pps-worker: bad value '%s'\n", optarg);
	return -EINVAL;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "mpops-bench-pps-worker: cannot pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

/* The header testpmd's txonly writes: broadcast Ethernet, IPv4, UDP. */
static const uint8_t frame_hdr[42] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 'm', 'p', 'p', 'p', 's', 0x08, 0x00,
	0x45, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	198, 18, 0, 1, 198, 18, 0, 2,
	0x04, 0x00, 0x04, 0x01, 0x00, 0x1e, 0x00, 0x00,
};

struct counts {
	unsigned long long tx, rx, tx_kicks, rx_kicks;
	unsigned long long rx_calls, rx_empty;	/* rx bursts, and those that found nothing */
	unsigned long long tx_calls, tx_short;	/* tx bursts, and those the ring cut short */
};

static void snap(struct mpops_port *p, uint16_t qp, const struct counts *mine, struct counts *out)
{
	struct mpops_port_queue_stats rs, ts;

	*out = *mine;
	if (mpops_port_stats_get(p, qp, &rs, &ts) == 0) {
		out->tx_kicks = ts.kicks;
		out->rx_kicks = rs.kicks;
	}
}

/* The loop: see the header comment. */
static int run_loop(struct opts *o, struct mpops_port *p, uint16_t qp, void *base)
{
	struct mpops_pktpool *pool = mpops_port_pool(p);
	const int do_tx = o->mode != M_RXONLY, do_rx = o->mode != M_TXONLY;
	const unsigned burst = o->burst, hlen = o->size < 42 ? o->size : 42;
	const unsigned long long *moved;
	struct counts c = { 0 }, c0 = { 0 }, c1 = { 0 };
	double t0 = 0, t1 = 0, t;
	unsigned pass = 0;
	int measuring = 0, late = 0;

	moved = o->mode == M_TXONLY ? &c.tx : &c.rx;
	if (o->window_s > 0) {
		o->start_at = now_s() + o->warmup_s;
		o->stop_at = o->start_at + o->window_s;
	}
	if (o->go_at > 0) {
		struct timespec ts = { .tv_sec = (time_t)o->go_at,
				       .tv_nsec = (long)((o->go_at - (double)(time_t)o->go_at) * 1e9) };

		while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	if (o->count == 0 && o->polls == 0 && now_s() > o->start_at)
		late = 1;	/* started after the window opened: measure from now */
	if (o->count || o->polls) {
		measuring = 1;
		t0 = now_s();
	}
	while (!stop) {
		struct mpops_pkt *pk[MAX_BURST];
		int n;

		if (do_rx) {
			n = mpops_rx_burst(p, qp, pk, (uint16_t)burst);
			c.rx_calls++;
			if (n > 0) {
				mpops_pkt_free_bulk(pool, pk, (unsigned)n);
				c.rx += (unsigned)n;
			} else {
				c.rx_empty++;
			}
		}
		if (do_tx && mpops_pkt_alloc_bulk(pool, pk, burst) == 0) {
			for (unsigned i = 0; i < burst; i++) {
				memcpy(mpops_pkt_data(base, pk[i]), frame_hdr, hlen);
				pk[i]->data_len = (uint16_t)o->size;
				pk[i]->pkt_len = o->size;
			}
			n = mpops_tx_burst(p, qp, pk, (uint16_t)burst);
			if (n < 0)
				n = 0;
			c.tx += (unsigned)n;
			c.tx_calls++;
			c.tx_short += (unsigned)n < burst;
			if ((unsigned)n < burst)
				mpops_pkt_free_bulk(pool, pk + n, burst - (unsigned)n);
		}
		if (o->count || o->polls) {
			if ((o->count && *moved >= o->count) || (o->polls && c.rx_calls >= o->polls))
				break;
			continue;
		}
		if (++pass % CLOCK_EVERY)
			continue;
		t = now_s();
		if (!measuring && (t >= o->start_at || late)) {
			snap(p, qp, &c, &c0);
			t0 = t;
			measuring = 1;
		} else if (measuring && t >= o->stop_at && t - t0 > 0.05) {
			break;
		}
	}
	t1 = now_s();
	snap(p, qp, &c, &c1);
	if (!measuring) {
		printf("result error=\"stopped before the window\"\n");
		return 1;
	}
	{
		unsigned long long pkts = o->mode == M_TXONLY ? c1.tx - c0.tx : c1.rx - c0.rx;
		double secs = t1 - t0;

		printf("result packets=%llu seconds=%.6f mpps=%.6f tx=%llu rx=%llu tx_kicks=%llu "
		       "rx_kicks=%llu rx_calls=%llu rx_empty=%llu tx_calls=%llu tx_short=%llu "
		       "late=%d\n",
		       pkts, secs, secs > 0 ? (double)pkts / secs / 1e6 : 0.0, c1.tx - c0.tx,
		       c1.rx - c0.rx, c1.tx_kicks - c0.tx_kicks, c1.rx_kicks - c0.rx_kicks,
		       c1.rx_calls - c0.rx_calls, c1.rx_empty - c0.rx_empty,
		       c1.tx_calls - c0.tx_calls, c1.tx_short - c0.tx_short, late);
	}
	return 0;
}

/* Claim the queue pair, say so, run the measured loop, release it. */
static int claim_and_run(struct opts *o, struct mpops_region *r, struct mpops_port *p)
{
	int rc, ret;

	if ((rc = mpops_port_claim(p, (uint16_t)o->qp)) < 0) {
		printf("result error=\"claim: %s\"\n", strerror(-rc));
		return 1;
	}
	printf("ready pid=%d\n", (int)getpid());
	ret = run_loop(o, p, (uint16_t)o->qp, mpops_region_base(r));
	mpops_port_release(p, (uint16_t)o->qp);
	return ret;
}

static int run_primary(struct opts *o)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .runtime_dir = o->rundir };
	struct vtnet_conf vc = {
		.sz = sizeof(vc), .vhost_path = o->socket, .connect_timeout_ms = 20000,
		.nb_qp = (uint16_t)o->qps, .mergeable = o->mergeable, .event_idx = o->event_idx,
		.pool_size = o->pool,
	};
	struct mpops_region *r;
	struct mpops_port *p;
	int rc, ret = 1;

	/* Packet buffers (2176 bytes and 64 of metadata each) plus rings. */
	ro.size = (size_t)o->pool * 2304 + (16u << 20);
	if ((rc = mpops_region_create(o->region, &ro, &r)) < 0)
		return 1;
	if ((rc = vtnet_port_create(r, PORT_NAME, &vc, &p)) < 0) {
		printf("result error=\"port create: %s\"\n", strerror(-rc));
		goto out_region;
	}
	if ((rc = mpops_port_start(p)) < 0) {
		printf("result error=\"port start: %s\"\n", strerror(-rc));
		goto out_port;
	}
	if (o->hold) {
		printf("ready pid=%d\n", (int)getpid());
		while (!stop)
			pause();
		ret = 0;
		goto out_port;
	}
	ret = claim_and_run(o, r, p);
out_port:
	mpops_port_close(p);
out_region:
	mpops_region_detach(r);
	return ret;
}

static int run_secondary(struct opts *o)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = o->rundir };
	struct mpops_region *r;
	struct mpops_port *p;
	int rc, ret = 1;

	if ((rc = mpops_region_attach(o->region, &ao, &r)) < 0) {
		printf("result error=\"attach: %s\"\n", strerror(-rc));
		return 1;
	}
	if ((rc = mpops_port_open(r, PORT_NAME, &p)) < 0) {
		printf("result error=\"port open: %s\"\n", strerror(-rc));
		goto out_region;
	}
	ret = claim_and_run(o, r, p);
	mpops_port_close(p);
out_region:
	mpops_region_detach(r);
	return ret;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.qps = 1, .pool = 8192, .burst = 32, .size = 64, .mergeable = 1, .event_idx = 1,
		.cpu = -1, .timeout_s = 120,
	};
	struct sigaction sa = { .sa_handler = on_term };

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse(argc, argv, &o) < 0)
		return 2;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* The last resort if nobody stops us: SIGALRM's default ends the process. */
	alarm(o.timeout_s);
	pin(o.cpu);
	return o.primary ? run_primary(&o) : run_secondary(&o);
}
