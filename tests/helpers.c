/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static char cap_buf[1 << 16];
static size_t cap_len;

static void cap_fn(enum mpops_log_level level, const char *line, void *arg)
{
	(void)arg;
	(void)level;
	fprintf(stderr, "log: %s\n", line);
	pthread_mutex_lock(&cap_mu);
	cap_len += (size_t)snprintf(cap_buf + cap_len, sizeof(cap_buf) - cap_len, "%s\n", line);
	if (cap_len >= sizeof(cap_buf))
		cap_len = sizeof(cap_buf) - 1;
	pthread_mutex_unlock(&cap_mu);
}

void logcap_start(void)
{
	logcap_reset();
	mpops_log_set_level(MPOPS_LOG_INFO);
	mpops_log_set(cap_fn, NULL);
}

int logcap_wait(const char *needle, int n, int timeout_ms)
{
	int got = logcap_count(needle);

	for (int waited = 0; got < n && waited < timeout_ms; waited += 5) {
		usleep(5000);
		got = logcap_count(needle);
	}
	return got;
}

void logcap_reset(void)
{
	pthread_mutex_lock(&cap_mu);
	cap_len = 0;
	cap_buf[0] = '\0';
	pthread_mutex_unlock(&cap_mu);
}

int logcap_count(const char *needle)
{
	int n = 0;

	pthread_mutex_lock(&cap_mu);
	for (const char *p = cap_buf; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	pthread_mutex_unlock(&cap_mu);
	return n;
}

static char rundir[64];

const char *rundir_make(void)
{
	strcpy(rundir, "/tmp/mpops-test-XXXXXX");
	if (!mkdtemp(rundir))
		abort();
	return rundir;
}

const char *rundir_path(void)
{
	return rundir;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

void rundir_remove(void)
{
	if (rundir[0])
		nftw(rundir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	rundir[0] = '\0';
}

struct mpops_region *primary_make(const char *name)
{
	struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir };
	struct mpops_region *r = NULL;

	if (mpops_region_create(name, &o, &r) < 0)
		return NULL;
	return r;
}

const char *helper_path(const char *name)
{
	static __thread char path[512];
	const char *dir = getenv("MPOPS_TEST_BINDIR");

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", name);
	return path;
}

pid_t peer_start(const char *prog, const char *const *args, int *out_fd)
{
	const char *argv[32];
	posix_spawn_file_actions_t fa;
	int p[2], n = 0;
	pid_t pid;

	argv[n++] = helper_path(prog);
	for (; args && *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	*out_fd = p[0];
	return pid;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Append what is readable to buf; 0 on EOF, 1 on data, -1 on timeout. */
static int read_some(int fd, char *buf, size_t len, size_t *used, int timeout_ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pf, 1, timeout_ms) <= 0)
		return -1;
	if (*used + 1 >= len) {
		/* Keep the tail: drop the first half. */
		memmove(buf, buf + len / 2, *used - len / 2);
		*used -= len / 2;
	}
	n = read(fd, buf + *used, len - *used - 1);
	if (n <= 0)
		return 0;
	*used += (size_t)n;
	buf[*used] = '\0';
	return 1;
}

int peer_wait_line(int out_fd, const char *needle, char *buf, size_t len, int timeout_ms)
{
	long long end = ms_now() + timeout_ms;
	size_t used = 0;

	buf[0] = '\0';
	while (!strstr(buf, needle)) {
		long long left = end - ms_now();

		if (left <= 0 || read_some(out_fd, buf, len, &used, (int)left) <= 0)
			return -1;
	}
	return 0;
}

int peer_finish(pid_t pid, int out_fd, char *buf, size_t len, int timeout_ms)
{
	long long end = ms_now() + timeout_ms;
	size_t used = strlen(buf);
	int st = -1;

	for (;;) {
		long long left = end - ms_now();
		int rc;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		rc = read_some(out_fd, buf, len, &used, (int)left);
		if (rc == 0)
			break;
	}
	close(out_fd);
	waitpid(pid, &st, 0);
	return st;
}

int peer_run(const char *prog, const char *const *args, char *buf, size_t len)
{
	int fd;
	pid_t pid = peer_start(prog, args, &fd);

	buf[0] = '\0';
	if (pid < 0)
		return -1;
	return peer_finish(pid, fd, buf, len, 30000);
}

/* Every peer begun in this test process, for peers_end_all(). */
#define PEERS_MAX 64
static struct peer *peers[PEERS_MAX];

void peer_begin(struct peer *p, const char *prog, const char *const *args, const char *ready)
{
	p->out[0] = '\0';
	p->pid = peer_start(prog, args, &p->fd);
	cr_assert_gt(p->pid, 0, "cannot start %s", prog);
	for (int i = 0; i < PEERS_MAX; i++) {
		if (!peers[i] || peers[i] == p || peers[i]->pid <= 0) {
			peers[i] = p;
			break;
		}
	}
	if (ready)
		cr_assert_eq(peer_wait_line(p->fd, ready, p->out, sizeof(p->out), 30000), 0,
			     "%s did not say '%s':\n%s", prog, ready, p->out);
}

int peer_end(struct peer *p, int sig)
{
	if (p->pid <= 0)
		return p->status;
	if (sig)
		kill(p->pid, sig);
	p->status = peer_finish(p->pid, p->fd, p->out, sizeof(p->out), 20000);
	p->pid = -1;
	return p->status;
}

void peers_end_all(void)
{
	for (int i = 0; i < PEERS_MAX; i++) {
		if (peers[i] && peers[i]->pid > 0)
			peer_end(peers[i], SIGKILL);
		peers[i] = NULL;
	}
}

unsigned long long json_num(const char *obj, const char *key)
{
	char pat[64];
	const char *p;

	cr_assert_not_null(obj);
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(obj, pat);
	cr_assert_not_null(p, "no \"%s\" in:\n%s", key, obj);
	return strtoull(p + strlen(pat), NULL, 10);
}

struct mpops_pktpool_census pool_census_settled(struct mpops_region *r, mpops_off_t pool,
						struct mpops_port *port)
{
	struct mpops_pktpool_census c = { .sz = sizeof(c) };
	uint32_t prev_free = UINT32_MAX;

	/* The primary's channel thread gives back while we count: a census is
	 * not a snapshot. Settled: nobody dead or gone, nothing unaccounted,
	 * and the same free count twice in a row. */
	for (int i = 0; i < 1000; i++) {
		unsigned dead = 0;

		cr_assert_eq(port ? mpops_port_pool_census(port, &c) : mpops_pktpool_census(r, pool, &c),
			     0);
		for (unsigned k = 0; k < c.nprocs; k++)
			dead += !c.procs[k].alive;
		if (!dead && !c.gone && !c.unaccounted && c.free == prev_free)
			break;
		prev_free = dead || c.gone || c.unaccounted ? UINT32_MAX : c.free;
		usleep(10000);
	}
	return c;
}

void netns_veth_enter(char *ns, size_t len, const char *prefix)
{
	char cmd[320], path[96];
	int fd, st;

	snprintf(ns, len, "%s%d", prefix, (int)getpid());
	snprintf(cmd, sizeof(cmd),
		 "ip netns add %s && ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
		 "ip -n %s link add vxa numtxqueues 2 numrxqueues 2 type veth peer name vxb numtxqueues 2 numrxqueues 2 && "
		 "ip -n %s link set vxa up && ip -n %s link set vxb up",
		 ns, ns, ns, ns, ns);
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "'%s' failed: %#x", cmd, st);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	cr_assert_geq(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	cr_assert_eq(setns(fd, CLONE_NEWNET), 0);
	close(fd);
}

void netns_remove(const char *ns)
{
	char cmd[96];

	if (!ns[0])
		return;
	snprintf(cmd, sizeof(cmd), "ip netns del %s", ns);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove network namespace %s\n", ns);
}

/* ---- hugepages ---------------------------------------------------------- */

#define NR_HUGE "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

static long huge_read(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Add @delta pages to the reservation (not below 0): @return the change made. */
static long huge_adjust(long delta)
{
	int fd = open(NR_HUGE, O_RDWR | O_CLOEXEC);
	long cur, now = -1;
	char buf[32];
	int len;

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX) == 0 && (cur = huge_read(fd)) >= 0) {
		len = snprintf(buf, sizeof(buf), "%ld\n", cur + delta > 0 ? cur + delta : 0);
		if (pwrite(fd, buf, (size_t)len, 0) == len || delta < 0)
			now = huge_read(fd);
		if (now >= 0)
			now -= cur;
	}
	close(fd);	/* and the lock with it */
	return now;
}

long huge_take(long n)
{
	return huge_adjust(n);
}

void huge_give(long n)
{
	if (n > 0)
		huge_adjust(-n);
}
