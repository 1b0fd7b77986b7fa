/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-pps: packets per second through our virtio-net driver and
 * through DPDK's net_virtio_user, against the same two vhost-user backends
 * (mpops-vhost and dpdk-testpmd's vhost PMD), in one run.
 *
 * The runs are short and interleaved (our primary, DPDK's, our secondary,
 * then the next setting; the order flips every round), because this
 * machine's rate swings between two levels within seconds: only runs made
 * side by side can be compared. Each case reports the median over rounds,
 * the range, and paired ratios (ours / DPDK's in the same round).
 *
 * Pinning: the backend on one CPU (--cpus B,F: B, default 0), every
 * frontend process on the other (F, default 1): our worker, the holding
 * primary and the secondaries, or testpmd's two lcores.
 *
 * Groups: compare (the matrix above), kicks (notifications per packet with
 * event-idx on and off, mpops-vhost polling or kick-driven), scaling
 * (1, 2, 4, 8 secondaries sharing the frontend CPU, one queue pair each).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pps.h"

#ifndef PPS_WORKER
#define PPS_WORKER "mpops-bench-pps-worker"
#endif
#ifndef PPS_VHOST
#define PPS_VHOST "mpops-vhost"
#endif
#define PPS_TESTPMD "/usr/bin/dpdk-testpmd"
#define MAX_CASES 512

struct sel {
	unsigned groups, drivers, backends, modes, roles, mrg;	/* bit sets */
	unsigned aux_modes;	/* modes of the kicks and scaling groups */
	unsigned sizes[8], nsizes;
	unsigned secs[8], nsecs;
};

static struct pps_case cases[MAX_CASES];
static unsigned ncases;

static void on_signal(int sig)
{
	(void)sig;
	pps_interrupted = 1;
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
		"usage: mpops-bench-pps [options]\n"
		"  Packets per second: our vtnet driver and DPDK's net_virtio_user (in\n"
		"  dpdk-testpmd) against mpops-vhost and against testpmd's vhost PMD,\n"
		"  interleaved run by run. Run as root (DPDK) on a machine with 2+ CPUs.\n"
		"\n"
		"  --quick              ~2.5 minutes: 64-byte, mergeable on, kicks and scaling\n"
		"                       in txonly only, 2 rounds (the full run: ~15 minutes;\n"
		"                       runs that other processes disturbed are redone)\n"
		"  --rounds N           runs per case (default 3; --quick 2)\n"
		"  --seconds S          measured seconds per run, whole (default 1)\n"
		"  --warmup S           our worker's warm-up before the window (default 0.5;\n"
		"                       testpmd's is its first second of stats)\n"
		"  --json FILE          write the results as JSON\n"
		"  --list               print the cases that would run, and exit\n"
		"  Selection (comma-separated lists; default: everything):\n"
		"  --groups  compare,kicks,scaling\n"
		"  --driver  mpops,dpdk\n"
		"  --backend mpops-vhost,dpdk-vhost\n"
		"  --mode    txonly,rxonly,loopback\n"
		"  --size    64,1500            (frame bytes)\n"
		"  --mergeable on,off\n"
		"  --role    primary,secondary\n"
		"  --secondaries 1,2,4,8        (scaling)\n"
		"  Set-up:\n"
		"  --cpus B,F           backend CPU, frontend CPU (default 0,1)\n"
		"  --mbufs N            packet buffers, ours and testpmd's (default 8192)\n"
		"  --testpmd PATH       (default %s)\n"
		"  --worker PATH        (default: the one built with this program)\n"
		"  --vhost PATH         mpops-vhost (default: the one built with this program)\n"
		"  --verbose            print the processes' output when a run fails\n",
		PPS_TESTPMD);
}

/* Parse "a,b,c" against @names into a bit set. */
static int parse_set(const char *arg, const char *const *names, unsigned n, unsigned *out)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned i;

		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n) {
			fprintf(stderr, "mpops-bench-pps: unknown value '%s'\n", tok);
			return -EINVAL;
		}
		*out |= 1u << i;
	}
	return *out ? 0 : -EINVAL;
}

static int parse_uints(const char *arg, unsigned *v, unsigned max, unsigned *n, unsigned lo,
		       unsigned hi)
{
	char buf[256], *save = NULL, *tok, *end;

	snprintf(buf, sizeof(buf), "%s", arg);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long x = strtoul(tok, &end, 10);

		if (*end || x < lo || x > hi || *n == max) {
			fprintf(stderr, "mpops-bench-pps: bad value '%s' (%u..%u)\n", tok, lo, hi);
			return -EINVAL;
		}
		v[(*n)++] = (unsigned)x;
	}
	return *n ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */
/* ------------------------------------------------------------------ */

static struct pps_case *add(enum pps_group g, enum pps_driver d, enum pps_backend b,
			    enum pps_mode m, unsigned size, int mrg, int secondary)
{
	struct pps_case *c;

	if (ncases == MAX_CASES)
		return NULL;
	c = &cases[ncases++];
	memset(c, 0, sizeof(*c));
	c->group = g;
	c->driver = d;
	c->backend = b;
	c->mode = m;
	c->size = size;
	c->mergeable = mrg;
	c->secondary = secondary;
	c->secondaries = secondary ? 1 : 0;
	c->event_idx = d == DRV_MPOPS ? 1 : -1;
	c->peer = c->primary_peer = -1;
	return c;
}

static void build(const struct sel *s, const char *testpmd_missing)
{
	static const char dpdk_secondary[] =
		"DPDK multi-process needs the primary on mounted hugepages; testpmd runs "
		"here with --no-huge, so no DPDK secondary";

	/* compare: per setting, ours as primary, DPDK's, ours as secondary. */
	for (unsigned b = 0; b < 2 && (s->groups & 1u << G_COMPARE); b++) {
		if (!(s->backends & 1u << b))
			continue;
		for (unsigned m = 0; m < 3; m++) {
			if (!(s->modes & 1u << m))
				continue;
			for (unsigned z = 0; z < s->nsizes; z++) {
				for (int mrg = 1; mrg >= 0; mrg--) {
					int op = -1, dp = -1, os = -1;
					struct pps_case *c;

					if (!(s->mrg & 1u << (mrg ? 0 : 1)))
						continue;
					if ((s->drivers & 1) && (s->roles & 1)) {
						op = (int)ncases;
						add(G_COMPARE, DRV_MPOPS, b, m, s->sizes[z], mrg, 0);
					}
					if ((s->drivers & 2) && (s->roles & 1)) {
						dp = (int)ncases;
						add(G_COMPARE, DRV_DPDK, b, m, s->sizes[z], mrg, 0);
					}
					if ((s->drivers & 1) && (s->roles & 2)) {
						os = (int)ncases;
						add(G_COMPARE, DRV_MPOPS, b, m, s->sizes[z], mrg, 1);
					}
					if ((s->drivers & 2) && (s->roles & 2)) {
						c = add(G_COMPARE, DRV_DPDK, b, m, s->sizes[z], mrg, 1);
						c->skip = dpdk_secondary;
					}
					if (op >= 0)
						cases[op].peer = dp;
					if (os >= 0) {
						cases[os].peer = dp;
						cases[os].primary_peer = op;
					}
				}
			}
		}
	}
	/* kicks: 64-byte, mergeable, primary, against mpops-vhost. */
	for (unsigned m = 0; m < 3 && (s->groups & 1u << G_KICKS); m++) {
		if (!(s->aux_modes & 1u << m) || !(s->backends & 1))
			continue;
		for (int kd = 0; kd < 2; kd++) {
			for (int ev = 1; ev >= 0 && (s->drivers & 1); ev--) {
				struct pps_case *c = add(G_KICKS, DRV_MPOPS, BE_MPOPS_VHOST, m, 64, 1, 0);

				c->event_idx = ev;
				c->kick_driven = kd;
			}
			if (s->drivers & 2)
				add(G_KICKS, DRV_DPDK, BE_MPOPS_VHOST, m, 64, 1, 0)->kick_driven = kd;
		}
	}
	/* scaling: N secondaries, one queue pair each, mpops-vhost polling. */
	for (unsigned m = 0; m < 3 && (s->groups & 1u << G_SCALING); m++) {
		if (!(s->aux_modes & 1u << m) || !(s->backends & 1) || !(s->drivers & 1) ||
		    m == MODE_RXONLY)
			continue;
		for (unsigned k = 0; k < s->nsecs; k++) {
			struct pps_case *c = add(G_SCALING, DRV_MPOPS, BE_MPOPS_VHOST, m, 64, 1, 1);

			c->secondaries = s->secs[k];
		}
	}
	for (unsigned i = 0; i < ncases && testpmd_missing; i++)
		if (!cases[i].skip && (cases[i].driver == DRV_DPDK ||
				       cases[i].backend == BE_DPDK_VHOST))
			cases[i].skip = testpmd_missing;
}

static void describe(const struct pps_case *c, char *buf, size_t len)
{
	char extra[64] = "";

	if (c->group == G_KICKS)
		snprintf(extra, sizeof(extra), " event_idx=%s %s",
			 c->event_idx < 0 ? "n/a" : c->event_idx ? "on" : "off",
			 c->kick_driven ? "kick-driven" : "polling");
	else if (c->group == G_SCALING)
		snprintf(extra, sizeof(extra), " x%u", c->secondaries);
	snprintf(buf, len, "%-7s %-16s %-11s %-8s %4u mrg=%-3s %-9s%s", pps_group_name(c->group),
		 pps_driver_name(c->driver), pps_backend_name(c->backend), pps_mode_name(c->mode),
		 c->size, c->mergeable ? "on" : "off", c->secondary ? "secondary" : "primary",
		 extra);
}

/* Other processes busy for more than this many CPUs: the run is redone. */
#define FOREIGN_MAX 0.15
#define FOREIGN_TRIES 3

/*
 * One run, timed against what the rest of the machine did meanwhile: the
 * machine's busy CPU time less our processes' (ours and every child's, as
 * they are reaped). This VM is shared with whatever else runs on it; a run
 * during which others took CPU is redone (a few times at most, then kept
 * and counted as disturbed).
 */
static int run_measured(struct pps_env *env, struct pps_case *c, struct pps_sample *smp,
			char *err, size_t errlen)
{
	for (int tries = 0;; tries++) {
		double m0, o0, m1, o1, t0 = now_s(), t1;
		int rc;

		pps_cpu_snapshot(&m0, &o0);
		rc = pps_run(env, c, smp, err, errlen);
		pps_cpu_snapshot(&m1, &o1);
		t1 = now_s();
		if (rc < 0)
			return rc;
		smp->foreign = t1 > t0 ? ((m1 - m0) - (o1 - o0)) / (t1 - t0) : 0;
		if (smp->foreign < 0)
			smp->foreign = 0;
		if (smp->foreign < FOREIGN_MAX || tries + 1 >= FOREIGN_TRIES || pps_interrupted)
			break;
		c->disturbed++;
		fprintf(stderr, "(others took %.2f CPU: again) ", smp->foreign);
		sleep(1);
	}
	return 0;
}

/*
 * Runs of one round. Units are the cases compared with each other, run
 * back to back: a compare setting's three, a kicks mode's six, a scaling
 * mode's four. The order inside a unit flips every round, and the round
 * starts at a different unit, so no case always follows the same one.
 */
static unsigned round_order(unsigned round, unsigned *order)
{
	unsigned starts[MAX_CASES], nunits = 0, n = 0;

	for (unsigned i = 0; i < ncases; i++) {
		const struct pps_case *c = &cases[i], *p = i ? &cases[i - 1] : NULL;

		if (!p || p->group != c->group || p->backend != c->backend ||
		    p->mode != c->mode || (c->group == G_COMPARE &&
		    (p->size != c->size || p->mergeable != c->mergeable)))
			starts[nunits++] = i;
	}
	for (unsigned u = 0; u < nunits; u++) {
		unsigned uu = (u + round * 5) % nunits;
		unsigned a = starts[uu], e = uu + 1 < nunits ? starts[uu + 1] : ncases;

		for (unsigned k = 0; k < e - a; k++) {
			unsigned i = round % 2 ? e - 1 - k : a + k;

			if (!cases[i].skip)
				order[n++] = i;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	static const char *const groups[] = { "compare", "kicks", "scaling" };
	static const char *const drivers[] = { "mpops", "dpdk" };
	static const char *const backends[] = { "mpops-vhost", "dpdk-vhost" };
	static const char *const modes[] = { "txonly", "rxonly", "loopback" };
	static const char *const roles[] = { "primary", "secondary" };
	static const char *const onoff[] = { "on", "off" };
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'Q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "json", required_argument, NULL, 'j' },
		{ "list", no_argument, NULL, 'l' },
		{ "groups", required_argument, NULL, 'g' },
		{ "driver", required_argument, NULL, 'd' },
		{ "backend", required_argument, NULL, 'b' },
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 'z' },
		{ "mergeable", required_argument, NULL, 'M' },
		{ "role", required_argument, NULL, 'R' },
		{ "secondaries", required_argument, NULL, 'S' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "mbufs", required_argument, NULL, 'n' },
		{ "testpmd", required_argument, NULL, 'T' },
		{ "worker", required_argument, NULL, 'W' },
		{ "vhost", required_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct pps_env env = {
		.worker = PPS_WORKER, .vhost = PPS_VHOST, .testpmd = PPS_TESTPMD,
		.cpu_backend = 0, .cpu_frontend = 1, .warmup = 0.5, .mbufs = 8192,
	};
	struct sel s = {
		.groups = 7, .drivers = 3, .backends = 3, .modes = 7, .roles = 3, .mrg = 3,
		.sizes = { 64, 1500 }, .nsizes = 2, .secs = { 1, 2, 4, 8 }, .nsecs = 4,
	};
	int quick = 0, list = 0, c, rounds = -1, have_sizes = 0, have_mrg = 0, have_modes = 0;
	double seconds = -1, t_start;
	const char *json = NULL, *testpmd_missing = NULL;
	static char missing_msg[300];
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned done = 0, total, *order;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'Q': quick = 1; break;
		case 'r': rounds = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'w': env.warmup = atof(optarg); break;
		case 'j': json = optarg; break;
		case 'l': list = 1; break;
		case 'g': rc = parse_set(optarg, groups, 3, &s.groups); break;
		case 'd': rc = parse_set(optarg, drivers, 2, &s.drivers); break;
		case 'b': rc = parse_set(optarg, backends, 2, &s.backends); break;
		case 'm': rc = parse_set(optarg, modes, 3, &s.modes); have_modes = 1; break;
		case 'z':
			rc = parse_uints(optarg, s.sizes, 8, &s.nsizes, 60, 1514);
			have_sizes = 1;
			break;
		case 'M': rc = parse_set(optarg, onoff, 2, &s.mrg); have_mrg = 1; break;
		case 'R': rc = parse_set(optarg, roles, 2, &s.roles); break;
		case 'S':
			rc = parse_uints(optarg, s.secs, 8, &s.nsecs, 1, PPS_MAX_SECONDARIES);
			break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &env.cpu_backend, &env.cpu_frontend) != 2)
				rc = -EINVAL;
			break;
		case 'n': env.mbufs = (unsigned)atoi(optarg); break;
		case 'T': env.testpmd = optarg; break;
		case 'W': env.worker = optarg; break;
		case 'V': env.vhost = optarg; break;
		case 'v': env.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (rc < 0) {
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	s.aux_modes = s.modes;
	if (quick) {
		if (!have_sizes) {
			s.sizes[0] = 64;
			s.nsizes = 1;
		}
		if (!have_mrg)
			s.mrg = 1;
		/* kicks and scaling: txonly only, unless modes were chosen */
		if (!have_modes)
			s.aux_modes = 1u << MODE_TXONLY;
	}
	if (rounds < 0)
		rounds = quick ? 2 : 3;
	if (seconds < 0)
		seconds = 1;
	if (rounds < 1 || rounds > PPS_MAX_ROUNDS || seconds < 1 || seconds > 30 ||
	    env.warmup < 0 || env.mbufs < 2048) {
		fprintf(stderr, "mpops-bench-pps: --rounds 1..%d, --seconds 1..30, --mbufs >= 2048\n",
			PPS_MAX_ROUNDS);
		return 2;
	}
	env.seconds = seconds;
	if (access(env.testpmd, X_OK) != 0) {
		snprintf(missing_msg, sizeof(missing_msg),
			 "%s not found (apt-get install dpdk-dev)", env.testpmd);
		testpmd_missing = missing_msg;
	}
	build(&s, testpmd_missing);
	if (list) {
		for (unsigned i = 0; i < ncases; i++) {
			char d[160];

			describe(&cases[i], d, sizeof(d));
			printf("%s%s%s\n", d, cases[i].skip ? "  -- not run: " : "",
			       cases[i].skip ? cases[i].skip : "");
		}
		return 0;
	}
	if (access(env.worker, X_OK) != 0 || access(env.vhost, X_OK) != 0) {
		fprintf(stderr, "mpops-bench-pps: %s or %s missing: build first, or pass --worker/--vhost\n",
			env.worker, env.vhost);
		return 1;
	}
	snprintf(env.rundir, sizeof(env.rundir), "/tmp/mpops-pps-XXXXXX");
	if (!mkdtemp(env.rundir)) {
		perror("mpops-bench-pps: mkdtemp");
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	order = calloc(MAX_CASES, sizeof(*order));
	total = round_order(0, order) * (unsigned)rounds;
	fprintf(stderr, "mpops-bench-pps: %u cases, %u runs (%d rounds of %.0f s + set-up); "
		"backend on CPU %d, frontend on CPU %d\n", ncases, total, rounds, seconds,
		env.cpu_backend, env.cpu_frontend);
	t_start = now_s();
	for (int r = 0; r < rounds && !pps_interrupted; r++) {
		unsigned n = round_order((unsigned)r, order);

		for (unsigned k = 0; k < n && !pps_interrupted; k++) {
			struct pps_case *cs = &cases[order[k]];
			struct pps_sample smp = { 0 };
			char d[160], err[sizeof(cs->error)];

			describe(cs, d, sizeof(d));
			fprintf(stderr, "[%3u/%u %5.0fs] %s: ", ++done, total, now_s() - t_start, d);
			if (run_measured(&env, cs, &smp, err, sizeof(err)) < 0) {
				cs->failures++;
				snprintf(cs->error, sizeof(cs->error), "%s", err);
				fprintf(stderr, "FAILED: %s\n", err);
				continue;
			}
			smp.round = r;
			cs->s[cs->ns++] = smp;
			fprintf(stderr, "%.3f Mpps", smp.mpps);
			if (smp.kpp >= 0)
				fprintf(stderr, ", %.4f kicks/pkt", smp.kpp);
			if (smp.foreign >= FOREIGN_MAX)
				fprintf(stderr, " (others took %.2f CPU)", smp.foreign);
			fprintf(stderr, "\n");
		}
	}
	pps_cleanup_all(&env);
	rmdir(env.rundir);
	if (pps_interrupted)
		fprintf(stderr, "mpops-bench-pps: interrupted; reporting what ran\n");
	for (unsigned i = 0; i < ncases; i++)
		if (!cases[i].skip && cases[i].ns == 0 && !cases[i].error[0])
			snprintf(cases[i].error, sizeof(cases[i].error), "interrupted before it ran");
	pps_print_table(cases, ncases);
	if (json && pps_write_json(json, cases, ncases, &env, (unsigned)rounds,
				   now_s() - t_start) < 0) {
		fprintf(stderr, "mpops-bench-pps: cannot write %s\n", json);
		free(order);
		return 1;
	}
	free(order);
	return pps_interrupted ? 130 : 0;
}
