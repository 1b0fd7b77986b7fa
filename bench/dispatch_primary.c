/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-dispatch: what one call to a small op costs through each way
 * a multi-process driver can find it, in a primary and in a secondary that
 * is another executable (mpops-bench-dispatch-secondary, started from this
 * program's directory).
 *
 * The primary creates a region, publishes a device whose op is stored both
 * as an mpops ID and as a raw function pointer (the unsafe baseline), and
 * starts the secondary. Then, run after run, the two take turns: the
 * primary measures every case once, then tells the secondary to do the
 * same (the next run the other way round), so a slow stretch of the host
 * hits both processes and all cases alike. The secondary sends its per-run
 * figures back over a pipe; the primary reduces both, prints one table and
 * writes one JSON file with a report per role.
 *
 * Protocol on the secondary's stdin/stdout (text lines):
 *   secondary: "ready ID RAW OWN"   attached, set up, warmed up
 *   primary:   "run R"              measure one run
 *   secondary: "s C CYCLES NS"      per case C (nan = not measured)
 *              "t CYCLES"           the cold timer's overhead
 *              "done R" | "fail R"
 *   primary:   "quit"
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"

#define PROG "mpops-bench-dispatch"
#define SECONDARY_EXE "mpops-bench-dispatch-secondary"
#define PEER_TIMEOUT_MS (300 * 1000)	/* one run, even under valgrind */
#define RUNS_MAX 10000

extern char **environ;

struct options {
	unsigned runs;
	uint64_t calls;
	unsigned cold_calls;
	uint64_t warmup;
	int warmup_set;
	unsigned cases;
	int cold;
	int secondary;
	int cpu;
	const char *json;
	const char *runtime_dir;
	const char *secondary_path;
	const char *wrapper;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [options]\n"
		"  --runs N            repetitions, each measuring every case once in both\n"
		"                      processes (default 31)\n"
		"  --calls N           warm calls per case per run (default 1000000)\n"
		"  --cold-calls N      cold calls per case per run (default 1000)\n"
		"  --warmup N          untimed calls per case before the first run\n"
		"                      (default: --calls)\n"
		"  --case LIST         only these cases (comma-separated base names)\n"
		"  --no-cold           skip the _cold variants\n"
		"  --no-secondary      measure in the primary only\n"
		"  --cpu N             pin both processes to CPU N (default: the last online\n"
		"                      CPU; -1: do not pin)\n"
		"  --json FILE         write both reports to FILE:\n"
		"                      {\"reports\": [{\"role\": \"primary\", \"cases\": [...]},\n"
		"                                   {\"role\": \"secondary\", ...}], ...}\n"
		"  --runtime-dir DIR   where the region's socket goes\n"
		"  --secondary PATH    the secondary executable (default: next to this one)\n"
		"  --secondary-wrapper \"CMD ARGS\"  start the secondary under CMD (e.g. valgrind)\n"
		"\nWhat each case does per call:\n");
	dispatch_describe(f);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_cases(const char *list, unsigned *mask)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	*mask = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int c = dispatch_case_find(t);

		if (c < 0 || DISPATCH_IS_COLD(c)) {
			fprintf(stderr, PROG ": unknown case '%s' (give base names; _cold follows "
				"unless --no-cold)\n", t);
			return -EINVAL;
		}
		*mask |= 1u << c;
	}
	return *mask ? 0 : -EINVAL;
}

static int options_parse(int argc, char **argv, struct options *o)
{
	static const struct option lo[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "calls", required_argument, NULL, 'c' },
		{ "cold-calls", required_argument, NULL, 'C' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "case", required_argument, NULL, 'k' },
		{ "no-cold", no_argument, NULL, 'n' },
		{ "no-secondary", no_argument, NULL, 'N' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "json", required_argument, NULL, 'j' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "secondary", required_argument, NULL, 's' },
		{ "secondary-wrapper", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int opt, idx = 0;

	*o = (struct options){ .runs = 31, .calls = 1000000, .cold_calls = 1000,
			       .cases = (1u << DISPATCH_BASE_CASES) - 1, .cold = 1,
			       .secondary = 1, .cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1 };
	while ((opt = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
		int bad = 0;

		switch (opt) {
		case 'r': bad = parse_u64(optarg, 1, RUNS_MAX, &v); o->runs = (unsigned)v; break;
		case 'c': bad = parse_u64(optarg, 1, UINT64_MAX / 2, &o->calls); break;
		case 'C': bad = parse_u64(optarg, 1, 10000000, &v); o->cold_calls = (unsigned)v; break;
		case 'w': bad = parse_u64(optarg, 0, UINT64_MAX / 2, &o->warmup); o->warmup_set = 1; break;
		case 'k': bad = parse_cases(optarg, &o->cases); break;
		case 'n': o->cold = 0; break;
		case 'N': o->secondary = 0; break;
		case 'p': o->cpu = atoi(optarg); break;
		case 'j': o->json = optarg; break;
		case 'd': o->runtime_dir = optarg; break;
		case 's': o->secondary_path = optarg; break;
		case 'W': o->wrapper = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (bad) {
			if (opt != 'k')	/* parse_cases() said what was wrong */
				fprintf(stderr, PROG ": bad value '%s' for --%s\n", optarg,
					lo[idx].name);
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -EINVAL;
	}
	if (!o->warmup_set)
		o->warmup = o->calls;
	return 0;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, PROG ": cannot pin to CPU %d: %s (not pinned)\n", cpu, strerror(errno));
}

/* ==== the secondary ===================================================== */

struct peer {
	pid_t pid;
	int to;		/* its stdin */
	int from;	/* its stdout */
	char buf[8192];
	size_t len;
	int dead;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Next line from the peer into @line. @return 0, -ETIMEDOUT, -EPIPE. */
static int peer_line(struct peer *p, char *line, size_t len)
{
	int64_t deadline = now_ms() + PEER_TIMEOUT_MS;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pf = { .fd = p->from, .events = POLLIN };
		int64_t left;
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - p->buf);

			snprintf(line, len, "%.*s", (int)l, p->buf);
			memmove(p->buf, nl + 1, p->len - l - 1);
			p->len -= l + 1;
			return 0;
		}
		if (p->len == sizeof(p->buf))
			p->len = 0;	/* a line longer than the buffer: drop it */
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		n = read(p->from, p->buf + p->len, sizeof(p->buf) - p->len);
		if (n == 0)
			return -EPIPE;
		if (n > 0)
			p->len += (size_t)n;
	}
}

static int peer_send(struct peer *p, const char *line)
{
	size_t len = strlen(line);

	return write(p->to, line, len) == (ssize_t)len ? 0 : -EPIPE;
}

static int secondary_path(const struct options *o, char *buf, size_t len)
{
	ssize_t n;
	char *slash;

	if (o->secondary_path) {
		snprintf(buf, len, "%s", o->secondary_path);
		return 0;
	}
	n = readlink("/proc/self/exe", buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (!(slash = strrchr(buf, '/')) || (size_t)(slash + 1 - buf) + sizeof(SECONDARY_EXE) > len)
		return -ENAMETOOLONG;
	memcpy(slash + 1, SECONDARY_EXE, sizeof(SECONDARY_EXE));
	return 0;
}

static int peer_start(struct peer *p, const struct options *o, const char *rundir,
		      const char *region)
{
	char path[PATH_MAX], calls[24], cold[24], warm[24], mask[24], wrap[512];
	char *argv[48], *save = NULL;
	posix_spawn_file_actions_t fa;
	int in[2], out[2], n = 0, rc;

	if ((rc = secondary_path(o, path, sizeof(path))) < 0)
		return rc;
	snprintf(calls, sizeof(calls), "%llu", (unsigned long long)o->calls);
	snprintf(cold, sizeof(cold), "%u", o->cold_calls);
	snprintf(warm, sizeof(warm), "%llu", (unsigned long long)o->warmup);
	snprintf(mask, sizeof(mask), "%u", o->cases);
	snprintf(wrap, sizeof(wrap), "%s", o->wrapper ? o->wrapper : "");
	for (char *t = strtok_r(wrap, " ", &save); t && n < 32; t = strtok_r(NULL, " ", &save))
		argv[n++] = t;
	argv[n++] = path;
	argv[n++] = "--runtime-dir";
	argv[n++] = (char *)rundir;
	argv[n++] = "--calls";
	argv[n++] = calls;
	argv[n++] = "--cold-calls";
	argv[n++] = cold;
	argv[n++] = "--warmup";
	argv[n++] = warm;
	argv[n++] = "--cases";
	argv[n++] = mask;
	if (!o->cold)
		argv[n++] = "--no-cold";
	argv[n++] = (char *)region;
	argv[n] = NULL;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		rc = -errno;
		close(in[0]);
		close(in[1]);
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc) {
		fprintf(stderr, PROG ": cannot start %s: %s%s\n", argv[0], strerror(rc),
			rc == ENOENT ? " (ninja builds it next to " PROG ")" : "");
		close(in[1]);
		close(out[0]);
		return -rc;
	}
	p->to = in[1];
	p->from = out[0];
	p->len = 0;
	return 0;
}

/* Wait for "ready", echoing anything else. */
static int peer_ready(struct peer *p)
{
	char line[512];
	unsigned long long raw = 0, own = 0;
	int rc;

	while ((rc = peer_line(p, line, sizeof(line))) == 0) {
		if (sscanf(line, "ready %llx %llx", &raw, &own) == 2) {
			printf("secondary %d: the primary's raw pointer 0x%llx is not its "
			       "dispatch_user_notify_queue (0x%llx): raw_fnptr_shared not called there\n",
			       (int)p->pid, raw, own);
			return 0;
		}
		fprintf(stderr, "secondary: %s\n", line);
	}
	return rc;
}

/* One run in the secondary. */
static int peer_run(struct peer *p, unsigned run, struct dispatch_sample *s)
{
	char line[512];
	unsigned r, c;
	double cyc, ns;
	int rc;

	snprintf(line, sizeof(line), "run %u\n", run);
	if ((rc = peer_send(p, line)) < 0)
		return rc;
	while ((rc = peer_line(p, line, sizeof(line))) == 0) {
		if (sscanf(line, "s %u %lf %lf", &c, &cyc, &ns) == 3 && c < DISPATCH_CASES) {
			s->cycles[c] = cyc;
			s->ns[c] = ns;
		} else if (sscanf(line, "t %lf", &cyc) == 1) {
			s->timer_cycles = cyc;
		} else if (sscanf(line, "done %u", &r) == 1 && r == run) {
			return 0;
		} else if (sscanf(line, "fail %u", &r) == 1) {
			return -EIO;
		} else {
			fprintf(stderr, "secondary: %s\n", line);
		}
	}
	return rc;
}

/* Tell the secondary to stop; @return its exit status description or NULL. */
static const char *peer_stop(struct peer *p)
{
	static char why[128];
	char line[512];
	int st = 0;

	peer_send(p, "quit\n");
	close(p->to);
	while (peer_line(p, line, sizeof(line)) == 0)
		fprintf(stderr, "secondary: %s\n", line);
	close(p->from);
	if (waitpid(p->pid, &st, 0) < 0)
		return "lost";
	if (WIFSIGNALED(st)) {
		snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
		return why;
	}
	if (WEXITSTATUS(st)) {
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(st));
		return why;
	}
	return NULL;
}

/* ==== main ============================================================== */

static void sample_clear(struct dispatch_sample *s)
{
	for (unsigned c = 0; c < DISPATCH_CASES; c++)
		s->cycles[c] = s->ns[c] = NAN;
	s->timer_cycles = NAN;
}

static unsigned name_table_ids(void)
{
	unsigned n = 1;

	while (n < MPOPS_OPS_MAX && mpops_ops_name((mpops_ops_id_t)n, NULL, NULL) == 0)
		n++;
	return n - 1;
}

int main(int argc, char **argv)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro) };
	struct dispatch_report rep[2];
	struct dispatch_meta meta = { 0 };
	struct dispatch_sample *ps, *ss;
	struct dispatch_dev_shared *sh;
	struct dispatch_cfg cfg;
	struct mpops_region *r = NULL;
	struct peer peer = { .pid = -1 };
	char rundir[PATH_MAX], name[MPOPS_NAME_MAX + 1];
	const char *sec_error = NULL;
	struct options o;
	mpops_off_t off;
	int rc, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (options_parse(argc, argv, &o) < 0)
		return 2;
	pin(o.cpu);
	ps = calloc(o.runs, sizeof(*ps));
	ss = calloc(o.runs, sizeof(*ss));
	if (!ps || !ss)
		return 1;

	/* The region and the device, as a driver's primary would publish it. */
	if ((rc = mpops_runtime_dir(o.runtime_dir, rundir, sizeof(rundir))) < 0)
		return 1;
	ro.runtime_dir = rundir;
	ro.size = 4 << 20;
	snprintf(name, sizeof(name), "bench-dispatch-%d", (int)getpid());
	if ((rc = mpops_region_create(name, &ro, &r)) < 0) {
		fprintf(stderr, PROG ": cannot create region %s in %s: %s\n", name, rundir,
			strerror(-rc));
		return 1;
	}
	if ((rc = mpops_alloc(r, sizeof(*sh), 64, DISPATCH_ROOT, &off)) < 0 ||
	    (rc = mpops_root_set(r, DISPATCH_ROOT, off)) < 0)
		goto out;
	sh = mpops_ptr(mpops_region_base(r), off);
	if ((rc = mpops_ops_id(&mpops_impl_dispatch_user, &sh->ops_id)) < 0)
		goto out;
	sh->port_id = 3;
	sh->queue = 1;
	{
		dispatch_notify_fn fn = dispatch_user_notify_queue;

		memcpy(&sh->raw_notify, &fn, sizeof(fn));	/* the unsafe baseline */
	}
	if ((rc = dispatch_port_create(r)) < 0)
		goto out;
	cfg = (struct dispatch_cfg){ .calls = o.calls, .cold_calls = o.cold_calls,
				     .warmup_calls = o.warmup, .cases = o.cases, .cold = o.cold,
				     .primary = 1 };
	if ((rc = dispatch_setup(r, sh, &cfg)) < 0)
		goto out;
	meta = (struct dispatch_meta){ .runs = o.runs, .calls = o.calls,
				       .cold_calls = o.cold ? o.cold_calls : 0, .cpu = o.cpu,
				       .id = sh->ops_id, .load = { dispatch_loadavg(), NAN } };

	if (o.secondary) {
		fflush(stdout);
		if ((rc = peer_start(&peer, &o, rundir, name)) < 0 || (rc = peer_ready(&peer)) < 0) {
			sec_error = rc == -ETIMEDOUT ? "did not get ready in time" : "did not start";
			if (peer.pid > 0) {
				kill(peer.pid, SIGKILL);
				peer_stop(&peer);
			}
			peer.dead = 1;
			rc = 0;
		}
	}
	meta.id_count = name_table_ids();	/* after the secondary's registrations */
	if ((rc = dispatch_warmup()) < 0)
		goto out;

	for (unsigned run = 0; run < o.runs; run++) {
		int sec_first = run % 2;

		sample_clear(&ps[run]);
		sample_clear(&ss[run]);
		for (int turn = 0; turn < 2; turn++) {
			if (turn == sec_first) {
				if ((rc = dispatch_run(run, &ps[run])) < 0)
					goto out;
			} else if (o.secondary && !peer.dead) {
				if ((rc = peer_run(&peer, run, &ss[run])) < 0) {
					sec_error = rc == -EIO ? "reached the wrong implementation"
								: "stopped answering";
					kill(peer.pid, SIGKILL);
					peer_stop(&peer);
					peer.dead = 1;
					rc = 0;
				}
			}
		}
		fprintf(stderr, "\rrun %u/%u", run + 1, o.runs);
	}
	fprintf(stderr, "\n");
	if (o.secondary && peer.pid > 0 && !peer.dead) {
		const char *why = peer_stop(&peer);

		if (why)
			sec_error = why;
	}
	meta.tsc_ghz = dispatch_tsc_ghz();
	meta.load[1] = dispatch_loadavg();

	memset(rep, 0, sizeof(rep));
	rep[0].role = "primary";
	dispatch_report_make(&rep[0], ps, o.runs, meta.tsc_ghz);
	if (o.secondary) {
		rep[1].role = "secondary";
		dispatch_report_make(&rep[1], ss, o.runs, meta.tsc_ghz);
		dispatch_report_compare(&rep[1], ps, ss, o.runs);
		if (o.cases & (1u << DISPATCH_RAW_FNPTR_SHARED)) {
			rep[1].c[DISPATCH_RAW_FNPTR_SHARED].error = DISPATCH_RAW_SHARED_ERROR;
			if (o.cold)
				rep[1].c[DISPATCH_COLD(DISPATCH_RAW_FNPTR_SHARED)].error =
					DISPATCH_RAW_SHARED_ERROR;
		}
		if (sec_error) {
			static char buf[192];

			snprintf(buf, sizeof(buf), "the secondary %s", sec_error);
			rep[1].error = buf;
			failed = 1;
			/* Every case it did not measure says why. */
			for (unsigned c = 0; c < DISPATCH_CASES; c++)
				if (!rep[1].c[c].measured && !rep[1].c[c].error &&
				    (o.cases >> (c % DISPATCH_BASE_CASES) & 1) &&
				    (o.cold || !DISPATCH_IS_COLD(c)))
					rep[1].c[c].error = buf;
		}
	}
	printf("\n");
	dispatch_table_print(stdout, &meta, rep, o.secondary ? 2 : 1);
	if (o.json && dispatch_json_write(o.json, &meta, rep, o.secondary ? 2 : 1) < 0)
		failed = 1;
out:
	if (rc < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-rc));
		failed = 1;
		if (peer.pid > 0 && !peer.dead)
			peer_stop(&peer);
	}
	mpops_region_detach(r);
	free(ps);
	free(ss);
	return failed;
}
