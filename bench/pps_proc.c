/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-pps: the processes of one run. A backend (mpops-vhost, or
 * dpdk-testpmd with the vhost PMD) pinned to one CPU, a frontend (our worker
 * as primary, or a holding primary plus secondaries, or dpdk-testpmd with
 * net_virtio_user) pinned to the other; the frontend's own counts give the
 * rate. Every process is started here, stopped here by its pid, and what it
 * leaves (vhost socket, DPDK runtime directory) removed here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pps.h"

#define MAX_PROCS (PPS_MAX_SECONDARIES + 4)
#define OUT_MAX (1u << 20)
/* The wrapper's own limit: whatever happens here, testpmd ends by then. */
#define TESTPMD_LIMIT "120"

volatile int pps_interrupted;

struct proc {
	const char *name;
	pid_t pid;
	int out_fd;		/* stdout+stderr, -1 after EOF */
	int in_fd;		/* its stdin, when we hold it open; -1 otherwise */
	int wrapped;		/* started under timeout(1): the real process is its child */
	int exited, status;
	char *buf;
	size_t len;
};

static struct proc *live[MAX_PROCS];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Starting, watching and ending processes                             */
/* ------------------------------------------------------------------ */

static int proc_spawn(struct proc *p, const char *name, char *const argv[], int stdin_pipe)
{
	int out[2], in[2] = { -1, -1 }, slot;
	pid_t parent = getpid();

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->pid = -1;
	p->out_fd = p->in_fd = -1;
	p->wrapped = strcmp(argv[0], "timeout") == 0;
	for (slot = 0; slot < MAX_PROCS && live[slot]; slot++)
		;
	if (slot == MAX_PROCS)
		return -ENOSPC;
	if (!(p->buf = calloc(1, OUT_MAX + 1)))
		return -ENOMEM;
	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	if (stdin_pipe && pipe2(in, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	p->pid = fork();
	if (p->pid == 0) {
		sigset_t none;
		int devnull;

		/* If we die, so do they (timeout(1) passes SIGTERM on to testpmd). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		dup2(out[1], 1);
		dup2(out[1], 2);
		if (stdin_pipe) {
			dup2(in[0], 0);
		} else if ((devnull = open("/dev/null", O_RDONLY)) >= 0) {
			dup2(devnull, 0);
			close(devnull);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (stdin_pipe)
		close(in[0]);
	if (p->pid < 0) {
		close(out[0]);
		if (stdin_pipe)
			close(in[1]);
		return -errno;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	p->out_fd = out[0];
	p->in_fd = stdin_pipe ? in[1] : -1;
	live[slot] = p;
	return 0;
}

/* Read what the processes printed, for at most @timeout_ms; reap the dead. */
static void pump(int timeout_ms)
{
	struct pollfd pf[MAX_PROCS];
	struct proc *who[MAX_PROCS];
	int n = 0;

	for (int i = 0; i < MAX_PROCS; i++) {
		if (live[i] && live[i]->out_fd >= 0) {
			pf[n].fd = live[i]->out_fd;
			pf[n].events = POLLIN;
			who[n++] = live[i];
		}
	}
	if (n == 0) {
		struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	} else if (poll(pf, (nfds_t)n, timeout_ms) > 0) {
		for (int i = 0; i < n; i++) {
			struct proc *p = who[i];
			ssize_t r;

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (;;) {
				char tmp[8192];

				r = read(p->out_fd, tmp, sizeof(tmp));
				if (r <= 0)
					break;
				/* Keep the first quarter and the latest: drop the middle. */
				if (p->len + (size_t)r > OUT_MAX) {
					size_t q = OUT_MAX / 4;

					memmove(p->buf + q, p->buf + p->len - q, q);
					p->len = 2 * q;
				}
				memcpy(p->buf + p->len, tmp, (size_t)r);
				p->len += (size_t)r;
				p->buf[p->len] = '\0';
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				close(p->out_fd);
				p->out_fd = -1;
			}
		}
	}
	for (int i = 0; i < MAX_PROCS; i++) {
		struct proc *p = live[i];

		if (p && !p->exited && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
			p->exited = 1;
	}
}

/* Wait until @p exited (and its output is read), at most @timeout_s. */
static int proc_wait(struct proc *p, double timeout_s)
{
	double end = now_s() + timeout_s, drained = 0;

	while (!(p->exited && p->out_fd < 0)) {
		double t = now_s();

		if (t > end)
			return -ETIMEDOUT;
		/* A child it left behind may keep the pipe: stop waiting soon after. */
		if (p->exited && drained == 0)
			drained = t + 0.5;
		if (drained && t > drained)
			break;
		pump(50);
	}
	return 0;
}

/* Wait for @needle in @p's output (0), its exit (-ECHILD) or timeout. */
static int proc_wait_for(struct proc *p, const char *needle, double timeout_s)
{
	double end = now_s() + timeout_s;

	while (!strstr(p->buf, needle)) {
		if (p->exited)
			return -ECHILD;
		if (now_s() > end || pps_interrupted)
			return -ETIMEDOUT;
		pump(20);
	}
	return 0;
}

/* SIGKILL what a timeout(1) wrapper started, by pid. */
static void kill_children(pid_t pid)
{
	char path[64], buf[256], *s, *e;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	if (!(f = fopen(path, "r")))
		return;
	if (fgets(buf, sizeof(buf), f)) {
		for (s = buf;; s = e) {
			long c = strtol(s, &e, 10);

			if (e == s)
				break;
			if (c > 0)
				kill((pid_t)c, SIGKILL);
		}
	}
	fclose(f);
}

/*
 * End @p: close its stdin (a testpmd waiting for a key press exits), send
 * @sig, wait @grace_s; then SIGTERM, then SIGKILL (its child too, if it is
 * a timeout wrapper). Always reaps it and forgets it.
 */
static void proc_end(struct proc *p, int sig, double grace_s)
{
	if (p->pid <= 0)
		return;
	if (p->in_fd >= 0) {
		close(p->in_fd);
		p->in_fd = -1;
	}
	if (!p->exited && sig)
		kill(p->pid, sig);
	if (proc_wait(p, grace_s) < 0 && !p->exited) {
		kill(p->pid, SIGTERM);
		if (proc_wait(p, 3) < 0 && !p->exited) {
			if (p->wrapped)
				kill_children(p->pid);
			kill(p->pid, SIGKILL);
			proc_wait(p, 3);
		}
	}
	if (!p->exited && waitpid(p->pid, &p->status, 0) == p->pid)
		p->exited = 1;
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
	for (int i = 0; i < MAX_PROCS; i++)
		if (live[i] == p)
			live[i] = NULL;
	p->pid = -1;
}

static void proc_free(struct proc *p)
{
	free(p->buf);
	p->buf = NULL;
}

/* The last line of @p's output that holds @key, for error messages. */
static void last_line(const struct proc *p, const char *key, char *out, size_t len)
{
	const char *s = NULL, *q, *e;

	out[0] = '\0';
	if (!p->buf)
		return;
	for (q = p->buf; (q = strstr(q, key)); q++)
		s = q;
	if (!s)
		return;
	while (s > p->buf && s[-1] != '\n')
		s--;
	e = strchr(s, '\n');
	snprintf(out, len, "%.*s", (int)(e ? e - s : (long)strlen(s)), s);
}

void pps_cpu_snapshot(double *machine_busy, double *ours)
{
	unsigned long long v[8] = { 0 };
	struct rusage self, kids;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	/* user nice system idle iowait irq softirq steal: all but idle, iowait */
	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			 &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
		memset(v, 0, sizeof(v));
	if (f)
		fclose(f);
	*machine_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	*ours = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
			 kids.ru_stime.tv_sec) +
		(double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
			 kids.ru_stime.tv_usec) * 1e-6;
}

void pps_cleanup_all(struct pps_env *env)
{
	(void)env;
	for (int i = 0; i < MAX_PROCS; i++)
		if (live[i])
			proc_end(live[i], SIGTERM, 3);
}

/* ------------------------------------------------------------------ */
/* Files processes leave                                               */
/* ------------------------------------------------------------------ */

/* EAL keeps its runtime files in a directory named after --file-prefix. */
static void eal_dir_remove(const char *prefix)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[256], path[600];
	struct dirent *e;
	DIR *d;

	if (getuid() == 0)
		snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	else
		snprintf(dir, sizeof(dir), "%s/dpdk/%s", xdg ? xdg : "/tmp", prefix);
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int wait_socket(struct proc *be, const char *sock, double timeout_s)
{
	double end = now_s() + timeout_s;
	struct stat st;

	while (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		if (be->exited || now_s() > end || pps_interrupted)
			return -1;
		pump(10);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Backends                                                            */
/* ------------------------------------------------------------------ */

struct run_ctx {
	struct pps_env *env;
	const struct pps_case *c;
	char sock[200], region[32], be_prefix[48], fe_prefix[48];
	char cpu_be[16], cpu_fe[16], lcores_be[32], lcores_fe[32];
	char size[16], mbufs[40], qps[16], vdev[300], txpkts[32];
	struct proc be, hold, fe[PPS_MAX_SECONDARIES];
	unsigned nfe;
};

static const char *dpdk_vhost_fwd(enum pps_mode m)
{
	/* What the backend does for the frontend's mode. */
	return m == MODE_TXONLY ? "--forward-mode=rxonly" :
	       m == MODE_RXONLY ? "--forward-mode=txonly" : "--forward-mode=io";
}

static int backend_start(struct run_ctx *x, unsigned nqp, char *err, size_t errlen)
{
	const struct pps_case *c = x->c;
	int rc;

	if (c->backend == BE_MPOPS_VHOST) {
		const char *mode = c->mode == MODE_TXONLY ? "sink" :
				   c->mode == MODE_RXONLY ? "source" : "loopback";
		char *argv[] = {
			(char *)x->env->vhost, "--socket", x->sock, "--mode", (char *)mode,
			"--size", x->size, "--queues", x->qps, "--cpu", x->cpu_be, "--quiet",
			"--duration", "120", c->kick_driven ? "--kick-driven" : NULL, NULL,
		};

		snprintf(x->qps, sizeof(x->qps), "%u", nqp);
		rc = proc_spawn(&x->be, "mpops-vhost", argv, 0);
	} else {
		char *argv[] = {
			"timeout", "-k", "5", TESTPMD_LIMIT, (char *)x->env->testpmd, "--no-pci",
			"--no-huge", "-m", "256", "--no-telemetry", x->be_prefix, x->lcores_be,
			"--vdev", x->vdev, "--", "--nb-cores=1", (char *)dpdk_vhost_fwd(c->mode),
			x->txpkts, x->mbufs, NULL,
		};

		snprintf(x->vdev, sizeof(x->vdev), "net_vhost0,iface=%s,queues=1", x->sock);
		/* stdin held open: testpmd runs until we close it. */
		rc = proc_spawn(&x->be, "testpmd-vhost", argv, 1);
	}
	if (rc < 0) {
		set_err(err, errlen, "cannot start the backend: %s", strerror(-rc));
		return -1;
	}
	if (wait_socket(&x->be, x->sock, 20) < 0) {
		char line[160];

		last_line(&x->be, x->be.exited ? "" : "rror", line, sizeof(line));
		set_err(err, errlen, "backend %s did not open %s%s%s", x->be.name, x->sock,
			line[0] ? ": " : "", line);
		return -1;
	}
	return 0;
}

/* mpops-vhost's exit report: kicks it read, packets both ways. */
static void vhost_report(const struct proc *be, unsigned long long *kicks,
			 unsigned long long *received, unsigned long long *sent)
{
	const char *j = strstr(be->buf, "{\"received_packets\"");
	const char *k;

	*kicks = *received = *sent = 0;
	if (!j)
		return;
	*received = strtoull(j + strlen("{\"received_packets\": "), NULL, 10);
	if ((k = strstr(j, "\"sent_packets\": ")))
		*sent = strtoull(k + strlen("\"sent_packets\": "), NULL, 10);
	if ((k = strstr(j, "\"kicks\": ["))) {
		char *e;

		for (k += strlen("\"kicks\": ["); *k && *k != ']'; k = e) {
			*kicks += strtoull(k, &e, 10);
			if (e == k)
				break;
			while (*e == ',' || *e == ' ')
				e++;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Our driver                                                          */
/* ------------------------------------------------------------------ */

static const char *worker_mode(enum pps_mode m)
{
	return m == MODE_TXONLY ? "txonly" : m == MODE_RXONLY ? "rxonly" : "loopback";
}

static double field(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* Start a worker: the primary (hold or loop) or a secondary on @qp. */
static int worker_start(struct run_ctx *x, struct proc *p, int primary, int hold, unsigned qp,
			unsigned nqp, double tgo, double t0, double t1)
{
	const struct pps_case *c = x->c;
	char qpb[16], nqpb[16], tgob[32], t0b[32], t1b[32], pool[16];
	char *argv[40];
	int n = 0;

	snprintf(qpb, sizeof(qpb), "%u", qp);
	snprintf(nqpb, sizeof(nqpb), "%u", nqp);
	snprintf(tgob, sizeof(tgob), "%.6f", tgo);
	snprintf(t0b, sizeof(t0b), "%.6f", t0);
	snprintf(t1b, sizeof(t1b), "%.6f", t1);
	if (primary) {
		/* Alone: its start-up (connecting to the backend) takes what it
		 * takes; warm-up and window count from its "ready". */
		snprintf(t0b, sizeof(t0b), "%.3f", x->env->warmup);
		snprintf(t1b, sizeof(t1b), "%.3f", x->env->seconds);
	}
	/* Every queue pair's rings, caches and bursts in flight, with room. */
	snprintf(pool, sizeof(pool), "%u", x->env->mbufs * (nqp > 1 ? 2 : 1));
	argv[n++] = (char *)x->env->worker;
	argv[n++] = primary ? "primary" : "secondary";
	argv[n++] = "--rundir";
	argv[n++] = x->env->rundir;
	argv[n++] = "--region";
	argv[n++] = x->region;
	argv[n++] = "--cpu";
	argv[n++] = x->cpu_fe;
	argv[n++] = "--timeout";
	argv[n++] = "60";
	if (primary) {
		argv[n++] = "--socket";
		argv[n++] = x->sock;
		argv[n++] = "--qps";
		argv[n++] = nqpb;
		argv[n++] = "--pool";
		argv[n++] = pool;
		argv[n++] = "--mergeable";
		argv[n++] = c->mergeable ? "on" : "off";
		argv[n++] = "--event-idx";
		argv[n++] = c->event_idx == 0 ? "off" : "on";
	}
	if (hold) {
		argv[n++] = "--hold";
	} else {
		argv[n++] = "--qp";
		argv[n++] = qpb;
		argv[n++] = "--mode";
		argv[n++] = (char *)worker_mode(c->mode);
		argv[n++] = "--size";
		argv[n++] = x->size;
		if (primary) {
			argv[n++] = "--warmup";
			argv[n++] = t0b;
			argv[n++] = "--window";
			argv[n++] = t1b;
		} else {
			argv[n++] = "--go-at";
			argv[n++] = tgob;
			argv[n++] = "--start-at";
			argv[n++] = t0b;
			argv[n++] = "--stop-at";
			argv[n++] = t1b;
		}
	}
	argv[n] = NULL;
	return proc_spawn(p, primary ? "worker-primary" : "worker-secondary", argv, 0);
}

struct worker_out {
	double mpps, packets, kicks;
};

static int worker_result(struct proc *p, struct worker_out *w, char *err, size_t errlen)
{
	const char *r = strstr(p->buf, "result ");

	if (r && field(r, "late=") > 0) {
		set_err(err, errlen, "%s was not ready when the window opened", p->name);
		return -1;
	}
	if (!r || strstr(r, "error=") || isnan(w->mpps = field(r, " mpps="))) {
		char line[160];

		last_line(p, r ? "result" : "rror", line, sizeof(line));
		set_err(err, errlen, "%s: %s", p->name, line[0] ? line :
			p->exited ? "exited without a result" : "no result");
		return -1;
	}
	w->packets = field(r, "packets=");
	w->kicks = field(r, "tx_kicks=") + field(r, "rx_kicks=");
	return 0;
}

static int run_ours(struct run_ctx *x, struct pps_sample *out, char *err, size_t errlen)
{
	const struct pps_case *c = x->c;
	unsigned nsec = c->group == G_SCALING ? c->secondaries : c->secondary ? 1 : 0;
	unsigned nqp = nsec ? nsec : 1;
	double tgo, t0, t1, sum = 0, pk = 0, kicks = 0, lo = INFINITY, hi = 0;
	struct worker_out w[PPS_MAX_SECONDARIES];
	int rc;

	if (backend_start(x, nqp, err, errlen) < 0)
		return -1;
	if (nsec == 0) {
		/* For the wait below only: the worker times itself from "ready". */
		tgo = now_s() + 10;
		t0 = tgo + x->env->warmup;
		t1 = t0 + x->env->seconds;
		x->nfe = 1;
		if ((rc = worker_start(x, &x->fe[0], 1, 0, 0, 1, tgo, t0, t1)) < 0) {
			set_err(err, errlen, "cannot start the worker: %s", strerror(-rc));
			return -1;
		}
	} else {
		if ((rc = worker_start(x, &x->hold, 1, 1, 0, nqp, 0, 0, 0)) < 0) {
			set_err(err, errlen, "cannot start the primary: %s", strerror(-rc));
			return -1;
		}
		if (proc_wait_for(&x->hold, "ready", 30) < 0) {
			char line[160];

			last_line(&x->hold, "result", line, sizeof(line));
			set_err(err, errlen, "primary not ready: %s", line[0] ? line : "no answer");
			return -1;
		}
		/* One window for all: the secondaries start up (none polls yet),
		 * start moving packets together, warm up, then count. */
		tgo = now_s() + 0.3 + 0.15 * nsec;
		t0 = tgo + x->env->warmup;
		t1 = t0 + x->env->seconds;
		for (unsigned k = 0; k < nsec; k++) {
			x->nfe = k + 1;
			if ((rc = worker_start(x, &x->fe[k], 0, 0, k, nqp, tgo, t0, t1)) < 0) {
				set_err(err, errlen, "cannot start secondary %u: %s", k, strerror(-rc));
				return -1;
			}
		}
	}
	for (unsigned k = 0; k < x->nfe; k++) {
		if (proc_wait(&x->fe[k], t1 - now_s() + 20) < 0) {
			set_err(err, errlen, "%s %u did not finish", x->fe[k].name, k);
			return -1;
		}
		if (worker_result(&x->fe[k], &w[k], err, errlen) < 0)
			return -1;
		sum += w[k].mpps;
		pk += w[k].packets;
		kicks += w[k].kicks;
		lo = fmin(lo, w[k].mpps);
		hi = fmax(hi, w[k].mpps);
	}
	out->mpps = sum;
	out->kpp = pk > 0 ? kicks / pk : -1;
	out->share_min = sum > 0 ? lo / (sum / x->nfe) : 0;
	out->share_max = sum > 0 ? hi / (sum / x->nfe) : 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* DPDK's virtio_user in testpmd                                       */
/* ------------------------------------------------------------------ */

/*
 * testpmd with --stats-period=1 prints a block about every second (every
 * two when its main lcore oversleeps); its "Rx-pps" and "Tx-pps" are the
 * rates since the previous block, timed by testpmd itself. The first block
 * comes as forwarding starts (rates 0) and only marks the start; the rate
 * of a run is the mean of the following blocks' rates, weighted by the time
 * between blocks, until they cover the measured window.
 */
static int next_block(const struct proc *p, size_t *off, double *rx, double *tx)
{
	const char *r = strstr(p->buf + *off, "Rx-pps:"), *t, *nl;

	if (!r || !(t = strstr(r, "Tx-pps:")) || !(nl = strchr(t, '\n')))
		return 0;
	*rx = strtod(r + 7, NULL);
	*tx = strtod(t + 7, NULL);
	*off = (size_t)(nl - p->buf);
	return 1;
}

static const char *dpdk_fe_fwd(enum pps_mode m)
{
	/* flowgen receives (and frees) a burst, then sends one: our loopback. */
	return m == MODE_TXONLY ? "--forward-mode=txonly" :
	       m == MODE_RXONLY ? "--forward-mode=rxonly" : "--forward-mode=flowgen";
}

static int run_dpdk(struct run_ctx *x, struct pps_sample *out, char *err, size_t errlen)
{
	const struct pps_case *c = x->c;
	char *argv[] = {
		"timeout", "-k", "5", TESTPMD_LIMIT, (char *)x->env->testpmd, "--no-pci",
		"--no-huge", "-m", "256", "--no-telemetry", x->fe_prefix, x->lcores_fe,
		"--vdev", x->vdev, "--", "--nb-cores=1", (char *)dpdk_fe_fwd(c->mode), x->txpkts,
		"--stats-period=1", x->mbufs, NULL,
	};
	double sum = 0, covered = 0, end, rx, tx, t_spawn, t_first = 0, t_prev = 0;
	unsigned blocks = 0;
	size_t off = 0;
	int rc;

	if (backend_start(x, 1, err, errlen) < 0)
		return -1;
	snprintf(x->vdev, sizeof(x->vdev), "net_virtio_user0,path=%s,queues=1,mrg_rxbuf=%d",
		 x->sock, c->mergeable);
	x->nfe = 1;
	if ((rc = proc_spawn(&x->fe[0], "testpmd-virtio_user", argv, 0)) < 0) {
		set_err(err, errlen, "cannot start testpmd: %s", strerror(-rc));
		return -1;
	}
	t_spawn = now_s();
	end = t_spawn + 20 + x->env->seconds;
	/* Until the blocks after the first cover the window (less a block's jitter). */
	while (blocks < 2 || t_prev - t_first < x->env->seconds - 0.2) {
		if (x->fe[0].exited || now_s() > end || pps_interrupted) {
			char line[160];

			last_line(&x->fe[0], x->fe[0].exited ? "rror" : "Tx-pps", line, sizeof(line));
			set_err(err, errlen, "testpmd (virtio_user) %s after %u blocks%s%s",
				x->fe[0].exited ? "exited" : "timed out", blocks,
				line[0] ? ": " : "", line);
			return -1;
		}
		pump(20);
		while (next_block(&x->fe[0], &off, &rx, &tx)) {
			double t = now_s();

			if (x->env->verbose)
				fprintf(stderr, "(block %u at %.2f s: rx %.0f tx %.0f) ", blocks,
					t - t_spawn, rx, tx);
			if (blocks++ == 0) {
				t_first = t_prev = t;
				continue;
			}
			sum += (c->mode == MODE_TXONLY ? tx : rx) * (t - t_prev);
			covered += t - t_prev;
			t_prev = t;
		}
	}
	/* SIGINT: testpmd stops forwarding, prints its totals and exits. */
	proc_end(&x->fe[0], SIGINT, 10);
	if (x->env->verbose)
		fprintf(stderr, "(stopped at %.2f s) ", now_s() - t_spawn);
	out->mpps = covered > 0 ? sum / covered / 1e6 : 0;
	out->kpp = -1;
	out->share_min = out->share_max = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* One run                                                             */
/* ------------------------------------------------------------------ */

int pps_run(struct pps_env *env, const struct pps_case *c, struct pps_sample *out, char *err,
	    size_t errlen)
{
	static struct run_ctx x;	/* large: the process output buffers' owners */
	unsigned seq = ++env->seq;
	int rc;

	memset(&x, 0, sizeof(x));
	x.env = env;
	x.c = c;
	x.be.pid = x.hold.pid = -1;
	for (unsigned k = 0; k < PPS_MAX_SECONDARIES; k++)
		x.fe[k].pid = -1;
	snprintf(x.sock, sizeof(x.sock), "%s/vhost%u.sock", env->rundir, seq);
	snprintf(x.region, sizeof(x.region), "pps%u", seq);
	snprintf(x.be_prefix, sizeof(x.be_prefix), "--file-prefix=mpps%db%u", (int)getpid(), seq);
	snprintf(x.fe_prefix, sizeof(x.fe_prefix), "--file-prefix=mpps%df%u", (int)getpid(), seq);
	snprintf(x.cpu_be, sizeof(x.cpu_be), "%d", env->cpu_backend);
	snprintf(x.cpu_fe, sizeof(x.cpu_fe), "%d", env->cpu_frontend);
	/* testpmd's main lcore and its forwarding lcore share the side's CPU. */
	snprintf(x.lcores_be, sizeof(x.lcores_be), "--lcores=0@%d,1@%d", env->cpu_backend,
		 env->cpu_backend);
	snprintf(x.lcores_fe, sizeof(x.lcores_fe), "--lcores=0@%d,1@%d", env->cpu_frontend,
		 env->cpu_frontend);
	snprintf(x.size, sizeof(x.size), "%u", c->size);
	snprintf(x.txpkts, sizeof(x.txpkts), "--txpkts=%u", c->size);
	snprintf(x.mbufs, sizeof(x.mbufs), "--total-num-mbufs=%u", env->mbufs);
	err[0] = '\0';

	rc = c->driver == DRV_MPOPS ? run_ours(&x, out, err, errlen) :
				      run_dpdk(&x, out, err, errlen);

	/* Frontends first (ours exit on their own), then the backend. */
	for (unsigned k = 0; k < x.nfe; k++)
		proc_end(&x.fe[k], SIGTERM, 5);
	proc_end(&x.hold, SIGTERM, 10);
	if (x.be.pid > 0) {
		/* testpmd exits when its stdin closes; mpops-vhost at SIGTERM. */
		proc_end(&x.be, c->backend == BE_MPOPS_VHOST ? SIGTERM : 0, 10);
		if (rc == 0 && c->backend == BE_MPOPS_VHOST && c->driver == DRV_DPDK) {
			unsigned long long kicks, received, sent, pk;

			vhost_report(&x.be, &kicks, &received, &sent);
			pk = c->mode == MODE_TXONLY ? received : sent;
			out->kpp = pk ? (double)kicks / (double)pk : -1;
		}
	}
	if (rc < 0 && env->verbose) {
		struct proc *all[] = { &x.be, &x.hold, &x.fe[0] };

		for (unsigned i = 0; i < 3; i++)
			if (all[i]->buf && all[i]->len)
				fprintf(stderr, "---- %s output (tail) ----\n%s\n", all[i]->name,
					all[i]->buf + (all[i]->len > 3000 ? all[i]->len - 3000 : 0));
	}
	proc_free(&x.be);
	proc_free(&x.hold);
	for (unsigned k = 0; k < PPS_MAX_SECONDARIES; k++)
		proc_free(&x.fe[k]);
	unlink(x.sock);
	eal_dir_remove(x.be_prefix + strlen("--file-prefix="));
	eal_dir_remove(x.fe_prefix + strlen("--file-prefix="));
	return rc;
}
