/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-fwd: a small testpmd-like forwarder on any port driver.
 *
 * The primary (--proc-type primary) creates the region and the port (today
 * through the one driver there is, virtio-net over vhost-user) and starts
 * it; a secondary (--proc-type secondary) attaches to the region and opens
 * the port by name. From there both are the same program on port.h alone:
 * each claims the queue pairs --queues-claim names and forwards on them in
 * the --forward-mode, while secondaries come and go (started, stopped,
 * SIGKILLed) and the primary keeps the port until SIGINT, SIGTERM or
 * --duration.
 *
 * Counting: each process counts what it receives and transmits per queue
 * pair, and reads every queue pair's shared counters. A packet may come
 * back on another queue pair than the one that sent it (a switch such as
 * OVS-DPDK returns it on whichever queue its thread polls): that is
 * traffic, never an error. At the end a process stops transmitting and
 * keeps receiving until nothing came for 250 ms (2 s at most), so that
 * what was in flight is counted (as "drained").
 *
 * Exit: 0 ok, 1 failure (one line on stderr: what was wrong, what to do),
 * 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>
#ifdef MPOPS_HAVE_AFXDP
#include <mpops/afxdp.h>
#endif

#include "app_util.h"

#define MAX_BURST 64
/* Busy passes between two reads of the clock (for the end and the rate
 * lines): a pass takes about a microsecond or less, and a read on each one
 * was a seventh of an empty AF_XDP poll's instructions. */
#define CLOCK_PASSES 16
#define DRAIN_QUIET_S 0.25
#define DRAIN_MAX_S 2.0

enum mode { MODE_IO, MODE_MACSWAP, MODE_TXONLY, MODE_RXONLY };
static const char *const mode_names[] = { "io", "macswap", "txonly", "rxonly" };

struct opts {
	int secondary;
	const char *region, *rundir, *port;
	const char *vhost_socket;	/* primary */
	const char *af_xdp;		/* primary: an AF_XDP port instead */
	int vhost_server;		/* primary */
	unsigned nb_qp;			/* primary: queue pairs of the port */
	int mergeable;			/* primary: 1 on, -1 off */
	int claim_all;			/* no --queues-claim: every queue pair */
	uint32_t claim;			/* --queues-claim as a mask */
	enum mode mode;
	unsigned size, burst, idle_us;
	uint64_t count;			/* txonly: packets per queue pair, 0 = no end */
	int tx_first;
	double duration;		/* 0: until a signal */
	int json;
};

/* One claimed queue pair: this process's own counts. */
struct fwdq {
	uint16_t qp;
	uint64_t rx, rx_bytes, tx, tx_bytes;
	uint64_t dropped;		/* io, macswap: received, not taken by tx */
	uint64_t drained;		/* received after the end, not forwarded */
	uint64_t rx_bursts, rx_empty;	/* passes whose rx burst found packets, nothing */
	uint64_t seq;			/* txonly: next stamp */
	uint64_t last_rx, last_tx;	/* at the last rate line */
};

struct fwd {
	struct opts o;
	struct mpops_region *r;
	struct mpops_port *port;
	struct mpops_pktpool *pool;
	void *base;
	struct mpops_port_info pi;
	struct fwdq q[MPOPS_PORT_MAX_QP];
	unsigned nq;
	uint64_t shared_rx[MPOPS_PORT_MAX_QP], shared_tx[MPOPS_PORT_MAX_QP];
	char made_dir[PATH_MAX];	/* the runtime dir, when we made it */
	FILE *live;			/* rate lines: stdout, stderr with --json */
	double t0, t_end;
	int audit;
};

static volatile sig_atomic_t stop;
static void on_stop(int sig) { (void)sig; stop = 1; }

/* ==== one line per failure ============================================== */

/*
 * The library logs one line per failure, saying what to do. Around a
 * set-up step we hold its first error line, so that a failing step prints
 * one line: ours, with the library's reason in it. Other lines (and a held
 * one whose step went on) are printed as they come. The primary's control
 * thread logs too: hence the lock.
 */
static struct {
	pthread_mutex_t mu;
	int hold;
	char line[512];
} held = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static void log_line(enum mpops_log_level level, const char *line, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&held.mu);
	if (level == MPOPS_LOG_ERR && held.hold && !held.line[0])
		snprintf(held.line, sizeof(held.line), "%s", line);
	else
		fprintf(stderr, "mpops-fwd: %s: %s\n", level_names[level & 3], line);
	pthread_mutex_unlock(&held.mu);
}

static void step_begin(void)
{
	pthread_mutex_lock(&held.mu);
	held.hold = 1;
	held.line[0] = '\0';
	pthread_mutex_unlock(&held.mu);
}

static void step_end(void)
{
	pthread_mutex_lock(&held.mu);
	if (held.line[0])
		fprintf(stderr, "mpops-fwd: error: %s\n", held.line);
	held.hold = 0;
	held.line[0] = '\0';
	pthread_mutex_unlock(&held.mu);
}

/*
 * A step failed with @rc: one line, what we tried and why (the library's
 * line when it logged one, else the errno and @todo). @return @rc.
 */
static int step_fail(int rc, const char *todo, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int step_fail(int rc, const char *todo, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&held.mu);
	if (held.line[0])
		fprintf(stderr, "mpops-fwd: %s: %s\n", what, held.line);
	else
		fprintf(stderr, "mpops-fwd: %s: %s: %s\n", what, strerror(-rc), todo);
	held.hold = 0;
	held.line[0] = '\0';
	pthread_mutex_unlock(&held.mu);
	return rc;
}

/* ==== options =========================================================== */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpops-fwd [options]\n"
		"  A testpmd-like forwarder on an mpops port, as a primary or a secondary.\n"
		"\n"
		"  --proc-type primary|secondary  (default primary)\n"
		"      primary: create the region and the port, start it, and keep it until\n"
		"      SIGINT, SIGTERM or --duration; secondary: attach to a running primary\n"
		"  --region NAME         region name (default fwd)\n"
		"  --runtime-dir DIR     where the region's socket is (default: mpops's; the\n"
		"                        primary makes DIR if missing and removes it at exit)\n"
		"  --port NAME           port name (default port0)\n"
		"  --queues-claim LIST   queue pairs this process forwards on: 0,2 or 0-3, or\n"
		"                        none (default: every queue pair of the port)\n"
		"  --forward-mode MODE   io: send back what arrives; macswap: the same with\n"
		"                        source and destination MAC swapped; txonly: send\n"
		"                        generated frames (and count what arrives); rxonly:\n"
		"                        count and drop (default io)\n"
		"  --tx-first            io, macswap: send one burst on each queue pair first\n"
		"  --size BYTES          txonly frame size, 60..1514 (default 64)\n"
		"  --count N             txonly: N frames per queue pair, then only receive\n"
		"  --burst N             packets per burst, 1..%d (default 32)\n"
		"  --idle-sleep US       sleep US microseconds after a pass that moved nothing\n"
		"                        (default 0: busy polling)\n"
		"  --duration SECONDS    stop after this long (default: at SIGINT/SIGTERM)\n"
		"  --json                one JSON object at the end (rate lines go to stderr)\n"
		"  --help                this text\n"
		"\n"
		"  Primary only, the port (a virtio-net port over vhost-user):\n"
		"  --vhost-socket PATH   the vhost-user socket (required)\n"
		"  --vhost-server        listen on PATH; the backend connects to us\n"
		"  --queues N            queue pairs, 1..%d (default 1)\n"
		"  --mergeable on|off    mergeable rx buffers (default on)\n"
		"  Or an AF_XDP port (the AF_XDP driver, afxdp.h):\n"
		"  --af-xdp ARGS         iface=IF[,start_queue=N][,queues=N][,mode=auto|native|\n"
		"                        generic][,zero_copy=auto|on|off][,frame_size=2048|4096]\n"
		"                        [,ring_size=N][,pool_size=N][,busy_poll=N]\n"
		"\n"
		"  Prints a line a second: per queue pair, rx and tx packets per second from\n"
		"  the shared counters, and this process's own for the pairs it claimed.\n"
		"  Exit status: 0 ok, 1 failure, 2 usage.\n",
		MAX_BURST, VTNET_MAX_QP);
}

/* A usage error: one line. @return -EINVAL (exit status 2). */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("mpops-fwd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see mpops-fwd --help)\n", stderr);
	return -EINVAL;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, lo, hi, &v) < 0)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* "none", or a list of numbers and ranges: "0,2", "0-3,6". */
static int parse_claim(const char *s, uint32_t *mask)
{
	char buf[128], *save, *tok;

	*mask = 0;
	if (strcmp(s, "none") == 0)
		return 0;
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf) || !buf[0])
		return -EINVAL;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		unsigned lo, hi;

		if (dash)
			*dash = '\0';
		if (parse_uint(tok, 0, MPOPS_PORT_MAX_QP - 1, &lo) < 0 ||
		    parse_uint(dash ? dash + 1 : tok, lo, MPOPS_PORT_MAX_QP - 1, &hi) < 0)
			return -EINVAL;
		for (unsigned q = lo; q <= hi; q++)
			*mask |= 1u << q;
	}
	return 0;
}

/* @return 0 or -EINVAL (logged: a usage error). */
static int parse(int argc, char **argv, struct opts *o)
{
	enum { O_PROC = 256, O_REGION, O_RUNDIR, O_PORT, O_CLAIM, O_MODE, O_TXFIRST, O_SIZE,
	       O_COUNT, O_BURST, O_IDLE, O_DURATION, O_JSON, O_VSOCK, O_VSERVER, O_QUEUES,
	       O_MRG, O_AFXDP, O_HELP };
	static const struct option lo[] = {
		{ "proc-type", required_argument, NULL, O_PROC },
		{ "region", required_argument, NULL, O_REGION },
		{ "runtime-dir", required_argument, NULL, O_RUNDIR },
		{ "port", required_argument, NULL, O_PORT },
		{ "queues-claim", required_argument, NULL, O_CLAIM },
		{ "forward-mode", required_argument, NULL, O_MODE },
		{ "tx-first", no_argument, NULL, O_TXFIRST },
		{ "size", required_argument, NULL, O_SIZE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "burst", required_argument, NULL, O_BURST },
		{ "idle-sleep", required_argument, NULL, O_IDLE },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "json", no_argument, NULL, O_JSON },
		{ "vhost-socket", required_argument, NULL, O_VSOCK },
		{ "vhost-server", no_argument, NULL, O_VSERVER },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "mergeable", required_argument, NULL, O_MRG },
		{ "af-xdp", required_argument, NULL, O_AFXDP },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	const char *primary_only = NULL;
	char *end;
	int c;

	*o = (struct opts){ .region = "fwd", .port = "port0", .nb_qp = 1, .mergeable = 1,
			    .claim_all = 1, .size = 64, .burst = 32 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_PROC:
			if (strcmp(optarg, "primary") && strcmp(optarg, "secondary"))
				return bad_usage("--proc-type takes primary or secondary, not '%s'", optarg);
			o->secondary = strcmp(optarg, "secondary") == 0;
			break;
		case O_REGION: o->region = optarg; break;
		case O_RUNDIR: o->rundir = optarg; break;
		case O_PORT: o->port = optarg; break;
		case O_CLAIM:
			if (parse_claim(optarg, &o->claim) < 0)
				return bad_usage("--queues-claim takes none or a list such as 0,2 or 0-3 (queue pairs 0..%d), not '%s'",
						 MPOPS_PORT_MAX_QP - 1, optarg);
			o->claim_all = 0;
			break;
		case O_MODE: {
			unsigned m;

			for (m = 0; m < 4 && strcmp(optarg, mode_names[m]); m++)
				;
			if (m == 4)
				return bad_usage("--forward-mode takes io, macswap, txonly or rxonly, not '%s'", optarg);
			o->mode = (enum mode)m;
			break;
		}
		case O_TXFIRST: o->tx_first = 1; break;
		case O_SIZE:
			if (parse_uint(optarg, 60, 1514, &o->size) < 0)
				return bad_usage("--size takes 60..1514 bytes, not '%s'", optarg);
			break;
		case O_COUNT:
			if (parse_u64(optarg, 1, UINT64_MAX, &o->count) < 0)
				return bad_usage("--count takes a number of packets above 0, not '%s'", optarg);
			break;
		case O_BURST:
			if (parse_uint(optarg, 1, MAX_BURST, &o->burst) < 0)
				return bad_usage("--burst takes 1..%d, not '%s'", MAX_BURST, optarg);
			break;
		case O_IDLE:
			if (parse_uint(optarg, 0, 1000000, &o->idle_us) < 0)
				return bad_usage("--idle-sleep takes 0..1000000 microseconds, not '%s'", optarg);
			break;
		case O_DURATION:
			o->duration = strtod(optarg, &end);
			if (end == optarg || *end || !(o->duration > 0) || o->duration > 1e7)
				return bad_usage("--duration takes seconds above 0, not '%s'", optarg);
			break;
		case O_JSON: o->json = 1; break;
		case O_VSOCK: o->vhost_socket = optarg; primary_only = "--vhost-socket"; break;
		case O_AFXDP: o->af_xdp = optarg; primary_only = "--af-xdp"; break;
		case O_VSERVER: o->vhost_server = 1; primary_only = "--vhost-server"; break;
		case O_QUEUES:
			if (parse_uint(optarg, 1, VTNET_MAX_QP, &o->nb_qp) < 0)
				return bad_usage("--queues takes 1..%d queue pairs, not '%s'", VTNET_MAX_QP, optarg);
			primary_only = "--queues";
			break;
		case O_MRG:
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return bad_usage("--mergeable takes on or off, not '%s'", optarg);
			o->mergeable = strcmp(optarg, "on") == 0 ? 1 : -1;
			primary_only = "--mergeable";
			break;
		case O_HELP: usage(stdout); exit(0);
		default:
			return bad_usage("unknown option or missing value in '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (o->secondary && primary_only)
		return bad_usage("%s is for the primary, which makes the port; a secondary opens it as it is",
				 primary_only);
	if (!o->secondary && !o->vhost_socket && !o->af_xdp)
		return bad_usage("the primary needs --vhost-socket PATH, the vhost-user backend's socket, or --af-xdp ARGS");
	if (o->vhost_socket && o->af_xdp)
		return bad_usage("--vhost-socket and --af-xdp each make the port: pass one");
#ifndef MPOPS_HAVE_AFXDP
	if (o->af_xdp)
		return bad_usage("this mpops-fwd was built without the AF_XDP driver (install libbpf-dev and libxdp-dev, then rebuild)");
#endif
	if (o->count && o->mode != MODE_TXONLY)
		return bad_usage("--count is for --forward-mode txonly");
	if (o->tx_first && o->mode != MODE_IO && o->mode != MODE_MACSWAP)
		return bad_usage("--tx-first is for --forward-mode io or macswap");
	return 0;
}

/* ==== set-up ============================================================ */

/* Region, port, start. @return 0 or -errno (logged). */
static int setup_primary(struct fwd *f)
{
	const struct opts *o = &f->o;
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 96u << 20,
					.runtime_dir = o->rundir };
	struct vtnet_conf vc = { .sz = sizeof(vc) };
	int rc;

	if (o->rundir && (rc = app_dir_make(o->rundir, f->made_dir, sizeof(f->made_dir))) < 0)
		return step_fail(rc, "pick another --runtime-dir",
				 "cannot create the runtime directory %s", o->rundir);
	step_begin();
	if ((rc = mpops_region_create(o->region, &ro, &f->r)) < 0)
		return step_fail(rc, "pick another --region",
				 "cannot create region '%s'", o->region);
#ifdef MPOPS_HAVE_AFXDP
	if (o->af_xdp) {
		if ((rc = afxdp_port_create_args(f->r, o->port, o->af_xdp, &f->port)) < 0)
			return step_fail(rc, "see the line above", "cannot create AF_XDP port '%s' (%s)",
					 o->port, o->af_xdp);
		goto start;
	}
#endif
	vc.vhost_path = o->vhost_socket;
	vc.server = o->vhost_server;
	vc.nb_qp = (uint16_t)o->nb_qp;
	vc.mergeable = o->mergeable;
	if ((rc = vtnet_port_create(f->r, o->port, &vc, &f->port)) < 0)
		return step_fail(rc, "start the backend first, or pass --vhost-server",
				 "cannot create port '%s' on vhost-user socket %s", o->port,
				 o->vhost_socket);
#ifdef MPOPS_HAVE_AFXDP
start:
#endif
	if ((rc = mpops_port_start(f->port)) < 0)
		return step_fail(rc, "see the backend's log", "cannot start port '%s'", o->port);
	step_end();
	return 0;
}

/* Attach, open the port. @return 0 or -errno (logged). */
static int setup_secondary(struct fwd *f)
{
	const struct opts *o = &f->o;
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = o->rundir };
	int rc;

	step_begin();
	if ((rc = mpops_region_attach(o->region, &ao, &f->r)) < 0)
		return step_fail(rc, "start mpops-fwd --proc-type primary first",
				 "cannot attach to region '%s' as a secondary", o->region);
	if ((rc = mpops_port_open(f->r, o->port, &f->port)) < 0)
		return step_fail(rc, "check --port against the primary's",
				 "cannot open port '%s' of region '%s'", o->port, o->region);
	step_end();
	return 0;
}

/*
 * The queue pairs to claim, checked against the port's.
 * @return 0, -EINVAL (logged: a usage error).
 */
static int claim_mask(const struct fwd *f, uint32_t *mask)
{
	*mask = f->o.claim_all ? (1u << f->pi.nb_qp) - 1 : f->o.claim;
	if (*mask >> f->pi.nb_qp)
		return bad_usage("--queues-claim names queue pairs the port does not have: port '%s' has %u (0..%u)",
				 f->pi.name, f->pi.nb_qp, f->pi.nb_qp - 1u);
	return 0;
}

/* Claim the queue pairs of @mask. @return 0 or -errno (logged). */
static int claim(struct fwd *f, uint32_t mask)
{
	int rc;

	for (uint16_t qp = 0; qp < f->pi.nb_qp; qp++) {
		if (!(mask & (1u << qp)))
			continue;
		step_begin();
		if ((rc = mpops_port_claim(f->port, qp)) < 0)
			return step_fail(rc, "pick another one with --queues-claim",
					 "cannot claim queue pair %u of port '%s'", qp, f->pi.name);
		step_end();
		f->q[f->nq++] = (struct fwdq){ .qp = qp };
	}
	return 0;
}

/* ==== forwarding ======================================================== */

/* What txonly sends: a broadcast frame from the port's MAC, then a stamp. */
struct stamp {
	uint8_t dst[6], src[6];
	uint16_t ethertype;
	uint32_t magic;
	uint16_t qp;
	uint64_t seq;
} __attribute__((packed));

#define STAMP_MAGIC 0x7766706du	/* "mpfw" */

/* Send up to @want generated frames on @q. @return frames sent. */
static unsigned tx_generate(struct fwd *f, struct fwdq *q, unsigned want)
{
	struct mpops_pkt *pk[MAX_BURST];
	unsigned size = f->o.size;
	int n;

	if (mpops_pkt_alloc_bulk(f->pool, pk, want) < 0)
		return 0;	/* pool empty for now (logged once) */
	for (unsigned i = 0; i < want; i++) {
		struct stamp *s = mpops_pkt_data(f->base, pk[i]);

		memset(s, 0, size);
		memset(s->dst, 0xff, 6);
		memcpy(s->src, f->pi.mac, 6);
		s->ethertype = 0xb588;	/* 0x88b5, local experimental, on the wire */
		s->magic = STAMP_MAGIC;
		s->qp = q->qp;
		s->seq = q->seq + i;
		pk[i]->data_len = (uint16_t)size;
		pk[i]->pkt_len = size;
	}
	n = mpops_tx_burst(f->port, q->qp, pk, (uint16_t)want);
	if (n < 0)
		n = 0;
	if ((unsigned)n < want)	/* ring full: not sent, not dropped; again later */
		mpops_pkt_free_bulk(f->pool, pk + n, want - (unsigned)n);
	q->seq += (uint64_t)n;
	q->tx += (uint64_t)n;
	q->tx_bytes += (uint64_t)n * size;
	return (unsigned)n;
}

static void mac_swap(struct fwd *f, struct mpops_pkt *m)
{
	uint8_t *e = mpops_pkt_data(f->base, m), t[6];

	if (m->data_len < 12)
		return;
	memcpy(t, e, 6);
	memcpy(e, e + 6, 6);
	memcpy(e + 6, t, 6);
}

/* Count a received burst of @n (an rx burst's result: < 0 is none). */
static inline int rx_count(struct fwdq *q, struct mpops_pkt **pk, int n)
{
	uint64_t bytes = 0;

	if (n <= 0) {
		q->rx_empty++;
		return 0;	/* < 0: not claimed, cannot happen here, logged once */
	}
	q->rx_bursts++;
	for (int i = 0; i < n; i++)
		bytes += pk[i]->pkt_len;
	q->rx_bytes += bytes;
	q->rx += (uint64_t)n;
	return n;
}

/*
 * rxonly's pass, on its own as testpmd has an engine per mode: receive a
 * burst, count it, free it.
 */
static inline unsigned rx_pass(struct fwd *f, struct fwdq *q)
{
	struct mpops_pkt *pk[MAX_BURST];
	int n = rx_count(q, pk, mpops_rx_burst(f->port, q->qp, pk, (uint16_t)f->o.burst));

	if (n)
		mpops_pkt_free_bulk(f->pool, pk, (unsigned)n);
	return (unsigned)n;
}

/*
 * One pass over queue pair @q: receive a burst and handle it as the mode
 * says (after the end: count and free); txonly then sends a burst.
 * @return packets moved.
 */
static unsigned fwd_pass(struct fwd *f, struct fwdq *q, int draining)
{
	struct mpops_pkt *pk[MAX_BURST];
	unsigned burst = f->o.burst, moved;
	int n, t;

	n = rx_count(q, pk, mpops_rx_burst(f->port, q->qp, pk, (uint16_t)burst));
	moved = (unsigned)n;
	if (n && (draining || f->o.mode == MODE_RXONLY || f->o.mode == MODE_TXONLY)) {
		if (draining)
			q->drained += (uint64_t)n;
		mpops_pkt_free_bulk(f->pool, pk, (unsigned)n);
	} else if (n) {
		uint64_t bytes = 0;

		for (int i = 0; i < n; i++) {
			if (f->o.mode == MODE_MACSWAP)
				mac_swap(f, pk[i]);
			bytes += pk[i]->pkt_len;
		}
		t = mpops_tx_burst(f->port, q->qp, pk, (uint16_t)n);
		if (t < 0)
			t = 0;
		/* What tx took is the driver's now: count what it left. */
		for (int i = t; i < n; i++)
			bytes -= pk[i]->pkt_len;
		q->tx_bytes += bytes;
		q->tx += (uint64_t)t;
		if (t < n) {
			q->dropped += (uint64_t)(n - t);
			mpops_pkt_free_bulk(f->pool, pk + t, (unsigned)(n - t));
		}
	}
	if (!draining && f->o.mode == MODE_TXONLY && (!f->o.count || q->tx < f->o.count)) {
		uint64_t left = f->o.count ? f->o.count - q->tx : burst;

		moved += tx_generate(f, q, left < burst ? (unsigned)left : burst);
	}
	return moved;
}

/* ==== rates and reports ================================================= */

static double rate(uint64_t now, uint64_t before, double dt)
{
	return dt > 0 ? (double)(now - before) / dt : 0;
}

static struct fwdq *mine(struct fwd *f, uint16_t qp)
{
	for (unsigned i = 0; i < f->nq; i++)
		if (f->q[i].qp == qp)
			return &f->q[i];
	return NULL;
}

/* One line: every queue pair's rates from the shared counters, and ours. */
static void rate_line(struct fwd *f, double now, double dt)
{
	struct mpops_port_link l;
	struct mpops_port_info pi;

	mpops_port_link_get(f->port, &l);
	mpops_port_info_get(f->port, &pi);
	fprintf(f->live, "mpops-fwd: %6.1fs link %-4s", now - f->t0, l.up ? "up" : "down");
	for (uint16_t qp = 0; qp < pi.nb_qp; qp++) {
		struct mpops_port_queue_stats rx, tx;
		struct fwdq *q = mine(f, qp);

		mpops_port_stats_get(f->port, qp, &rx, &tx);
		if (q)
			fprintf(f->live, " | q%u here", qp);
		else if (pi.owner_pid[qp])
			fprintf(f->live, " | q%u pid %d", qp, (int)pi.owner_pid[qp]);
		else
			fprintf(f->live, " | q%u free", qp);
		fprintf(f->live, ": rx %.0f tx %.0f pps", rate(rx.packets, f->shared_rx[qp], dt),
			rate(tx.packets, f->shared_tx[qp], dt));
		if (q) {
			fprintf(f->live, " (own count rx %.0f tx %.0f)", rate(q->rx, q->last_rx, dt),
				rate(q->tx, q->last_tx, dt));
			q->last_rx = q->rx;
			q->last_tx = q->tx;
		}
		f->shared_rx[qp] = rx.packets;
		f->shared_tx[qp] = tx.packets;
	}
	fputc('\n', f->live);
	fflush(f->live);
}

/* A JSON string: names come from the command line. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	putchar('"');
}

/* This process's counts summed over its queue pairs. */
static struct fwdq total(const struct fwd *f)
{
	struct fwdq t = { 0 };

	for (unsigned i = 0; i < f->nq; i++) {
		t.rx += f->q[i].rx;
		t.tx += f->q[i].tx;
		t.dropped += f->q[i].dropped;
		t.drained += f->q[i].drained;
		t.rx_bursts += f->q[i].rx_bursts;
		t.rx_empty += f->q[i].rx_empty;
	}
	return t;
}

static void report_json(struct fwd *f, int failed)
{
	struct fwdq t = total(f);
	struct mpops_port_info pi;

	printf("{\"role\": \"%s\", \"pid\": %d, \"region\": ", f->o.secondary ? "secondary" : "primary",
	       (int)getpid());
	json_str(f->o.region);
	printf(", \"port\": ");
	json_str(f->pi.name);
	printf(", \"driver\": ");
	json_str(f->pi.driver);
	printf(", \"mode\": \"%s\", \"seconds\": %.3f, \"queues\": [", mode_names[f->o.mode],
	       f->t_end - f->t0);
	for (unsigned i = 0; i < f->nq; i++) {
		const struct fwdq *q = &f->q[i];

		printf("%s{\"qp\": %u, \"rx_packets\": %llu, \"rx_bytes\": %llu, \"tx_packets\": %llu, \"tx_bytes\": %llu, \"tx_dropped\": %llu, \"drained\": %llu, \"rx_bursts\": %llu, \"rx_empty\": %llu}",
		       i ? ", " : "", q->qp, (unsigned long long)q->rx,
		       (unsigned long long)q->rx_bytes, (unsigned long long)q->tx,
		       (unsigned long long)q->tx_bytes, (unsigned long long)q->dropped,
		       (unsigned long long)q->drained, (unsigned long long)q->rx_bursts,
		       (unsigned long long)q->rx_empty);
	}
	printf("], \"total\": {\"rx_packets\": %llu, \"tx_packets\": %llu, \"tx_dropped\": %llu, \"drained\": %llu, \"rx_bursts\": %llu, \"rx_empty\": %llu}, \"port_queues\": [",
	       (unsigned long long)t.rx, (unsigned long long)t.tx, (unsigned long long)t.dropped,
	       (unsigned long long)t.drained, (unsigned long long)t.rx_bursts,
	       (unsigned long long)t.rx_empty);
	mpops_port_info_get(f->port, &pi);
	for (uint16_t qp = 0; qp < f->pi.nb_qp; qp++) {
		struct mpops_port_queue_stats rs, ts;

		mpops_port_stats_get(f->port, qp, &rs, &ts);
		printf("%s{\"qp\": %u, \"owner_pid\": %d, \"rx_packets\": %llu, \"tx_packets\": %llu, \"rx_errors\": %llu, \"tx_errors\": %llu, \"rx_drops\": %llu, \"tx_drops\": %llu}",
		       qp ? ", " : "", qp, (int)pi.owner_pid[qp], (unsigned long long)rs.packets,
		       (unsigned long long)ts.packets, (unsigned long long)rs.errors,
		       (unsigned long long)ts.errors, (unsigned long long)rs.drops,
		       (unsigned long long)ts.drops);
	}
	printf("], \"audit\": %d, \"exit_status\": %d}\n", f->audit, failed);
	fflush(stdout);
}

static void report_text(struct fwd *f, int failed)
{
	struct fwdq t = total(f);
	struct mpops_port_info pi;

	printf("\nmpops-fwd: %s pid %d, port %s, mode %s, %.1f s:\n  %-6s %14s %14s %12s %10s\n",
	       f->o.secondary ? "secondary" : "primary", (int)getpid(), f->pi.name,
	       mode_names[f->o.mode], f->t_end - f->t0, "qp", "rx packets", "tx packets",
	       "tx dropped", "drained");
	for (unsigned i = 0; i < f->nq; i++) {
		const struct fwdq *q = &f->q[i];

		printf("  %-6u %14llu %14llu %12llu %10llu\n", q->qp, (unsigned long long)q->rx,
		       (unsigned long long)q->tx, (unsigned long long)q->dropped,
		       (unsigned long long)q->drained);
	}
	printf("  %-6s %14llu %14llu %12llu %10llu\n", "total", (unsigned long long)t.rx,
	       (unsigned long long)t.tx, (unsigned long long)t.dropped,
	       (unsigned long long)t.drained);
	printf("  port %s, every process (shared counters):\n  %-6s %8s %14s %14s %9s %9s\n",
	       f->pi.name, "qp", "owner", "rx packets", "tx packets", "errors", "drops");
	mpops_port_info_get(f->port, &pi);
	for (uint16_t qp = 0; qp < f->pi.nb_qp; qp++) {
		struct mpops_port_queue_stats rs, ts;

		mpops_port_stats_get(f->port, qp, &rs, &ts);
		printf("  %-6u %8d %14llu %14llu %9llu %9llu\n", qp, (int)pi.owner_pid[qp],
		       (unsigned long long)rs.packets, (unsigned long long)ts.packets,
		       (unsigned long long)(rs.errors + ts.errors),
		       (unsigned long long)(rs.drops + ts.drops));
	}
	printf("audit: %d process-local pointers in shared memory\n%s\n", f->audit,
	       failed ? "FAILED" : "ok");
}

/* ==== main loop ========================================================= */

/*
 * Forward until a signal, --duration, or the primary's end, then count
 * what is still in flight. @return 0, -ENOTCONN the primary is gone
 * (logged).
 */
static int run(struct fwd *f)
{
	double last, now, end = f->o.duration > 0 ? f->t0 + f->o.duration : 0;
	unsigned pass = 0;
	int rc = 0;

	/* Rates from now on: what earlier processes counted is not ours. */
	for (uint16_t qp = 0; qp < f->pi.nb_qp; qp++) {
		struct mpops_port_queue_stats rx, tx;

		mpops_port_stats_get(f->port, qp, &rx, &tx);
		f->shared_rx[qp] = rx.packets;
		f->shared_tx[qp] = tx.packets;
	}
	if (f->o.tx_first)
		for (unsigned i = 0; i < f->nq; i++)
			tx_generate(f, &f->q[i], f->o.burst);
	last = f->t0;
	while (!stop) {
		unsigned moved = 0;

		for (unsigned i = 0; i < f->nq; i++)
			moved += f->o.mode == MODE_RXONLY ? rx_pass(f, &f->q[i])
							  : fwd_pass(f, &f->q[i], 0);
		if (!f->nq)
			usleep(100000);	/* nothing to forward: keep the port, count */
		else if (!moved && f->o.idle_us)
			usleep(f->o.idle_us);
		else if (++pass % CLOCK_PASSES)
			continue;	/* busy: the clock every CLOCK_PASSES passes */
		now = app_now_s();
		if (end && now >= end)
			break;
		if (now - last < 1.0)
			continue;
		rate_line(f, now, now - last);
		last = now;
		if (f->o.secondary) {
			step_begin();
			if ((rc = mpops_region_primary_check(f->r)) < 0) {
				step_fail(rc, "restart the primary, then this secondary",
					  "the primary of region '%s' (pid %d) is gone",
					  f->o.region, mpops_region_primary_pid(f->r));
				break;
			}
			step_end();
		}
	}
	/* Count what is still in flight: until DRAIN_QUIET_S without a packet. */
	for (double quiet = app_now_s(), t1 = quiet; rc == 0; ) {
		unsigned moved = 0;

		for (unsigned i = 0; i < f->nq; i++)
			moved += fwd_pass(f, &f->q[i], 1);
		now = app_now_s();
		if (moved)
			quiet = now;
		if (now - quiet >= DRAIN_QUIET_S || now - t1 >= DRAIN_MAX_S)
			break;
	}
	f->t_end = app_now_s();
	return rc;
}

/*
 * txonly with --count: every queue pair sent its count.
 * @return 0, -ETIMEDOUT one did not (logged).
 */
static int check_count(struct fwd *f)
{
	for (unsigned i = 0; f->o.count && i < f->nq; i++) {
		if (f->q[i].tx < f->o.count) {
			fprintf(stderr, "mpops-fwd: queue pair %u sent %llu of its %llu packets before the end: give it a longer --duration\n",
				f->q[i].qp, (unsigned long long)f->q[i].tx,
				(unsigned long long)f->o.count);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct fwd f;
	char list[3 * MPOPS_PORT_MAX_QP + 8] = "";
	uint32_t mask;
	int rc, failed = 0;

	if (parse(argc, argv, &f.o) < 0)
		return 2;
	f.live = f.o.json ? stderr : stdout;
	f.audit = -1;
	mpops_log_set(log_line, NULL);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = f.o.secondary ? setup_secondary(&f) : setup_primary(&f)) < 0) {
		failed = 1;
		goto out;
	}
	mpops_port_info_get(f.port, &f.pi);
	if (claim_mask(&f, &mask) < 0) {
		failed = 2;
		goto out;
	}
	if (claim(&f, mask) < 0) {
		failed = 1;
		goto out;
	}
	f.pool = mpops_port_pool(f.port);
	f.base = mpops_region_base(f.r);
	for (unsigned i = 0; i < f.nq; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u", i ? "," : "",
			 f.q[i].qp);
	fprintf(f.live, "mpops-fwd: %s pid %d: port %s of region %s (driver %s, %u queue pair%s, %02x:%02x:%02x:%02x:%02x:%02x): forwarding %s on queue pairs %s\n",
		f.o.secondary ? "secondary" : "primary", (int)getpid(), f.pi.name, f.o.region,
		f.pi.driver, f.pi.nb_qp, f.pi.nb_qp == 1 ? "" : "s", f.pi.mac[0], f.pi.mac[1],
		f.pi.mac[2], f.pi.mac[3], f.pi.mac[4], f.pi.mac[5], mode_names[f.o.mode],
		f.nq ? list : "none");
	fflush(f.live);

	f.t0 = app_now_s();
	failed = run(&f) < 0;
	failed |= check_count(&f) < 0;
	/* Each finding is logged (a warning line each). */
	f.audit = mpops_audit(f.r, NULL, NULL, 0);
	if (f.audit != 0) {
		if (f.audit < 0)
			fprintf(stderr, "mpops-fwd: cannot audit shared memory: %s: is /proc mounted?\n",
				strerror(-f.audit));
		else
			fprintf(stderr, "mpops-fwd: the audit found %d process-local pointers in shared memory (above): report it with mpops-dump's output\n",
				f.audit);
		failed = 1;
	}
	if (f.o.json)
		report_json(&f, failed);
	else
		report_text(&f, failed);
out:
	if (f.port)
		mpops_port_close(f.port);
	if (f.r)
		mpops_region_detach(f.r);
	app_dir_remove(f.made_dir);
	return failed;
}
