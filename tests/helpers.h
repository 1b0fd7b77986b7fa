/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared by the tests: log capture, temporary runtime dirs, peer programs. */
#ifndef MPOPS_TEST_HELPERS_H
#define MPOPS_TEST_HELPERS_H

#include <sys/types.h>

#include <mpops/mpops.h>

/* Capture every log line of this process (still echoed to stderr). */
void logcap_start(void);
/* How many captured lines contain @needle. */
int logcap_count(const char *needle);
/* logcap_count, once it reached @n or @timeout_ms passed: for lines another
 * thread logs (a monitor, the primary-death watcher). */
int logcap_wait(const char *needle, int n, int timeout_ms);
void logcap_reset(void);

/* A fresh runtime directory under /tmp, removed by rundir_remove(). */
const char *rundir_make(void);
const char *rundir_path(void);
void rundir_remove(void);

/* A region with default options in the test's runtime dir. */
struct mpops_region *primary_make(const char *name);

/* Path of a helper program built next to the tests. */
const char *helper_path(const char *name);

/* Start a helper program (up to 30 arguments) with stdout+stderr to a pipe (*out_fd). */
pid_t peer_start(const char *prog, const char *const *args, int *out_fd);
/* Read until the peer prints a line containing @needle (or timeout). */
int peer_wait_line(int out_fd, const char *needle, char *buf, size_t len, int timeout_ms);
/* Collect the peer's output until it exits; returns its wait status. */
int peer_finish(pid_t pid, int out_fd, char *buf, size_t len, int timeout_ms);
/* peer_start + peer_finish. */
int peer_run(const char *prog, const char *const *args, char *buf, size_t len);

/* A helper program a test started, and what it printed. */
struct peer {
	pid_t pid;		/* -1 once ended */
	int fd;			/* its stdout and stderr */
	int status;		/* its wait status, once ended */
	char out[1 << 15];	/* what it printed */
};

/* peer_start @prog; with @ready, read until it printed that (30 s at most).
 * Fails the test when it cannot. */
void peer_begin(struct peer *p, const char *prog, const char *const *args, const char *ready);
/* Send @sig (0: none) to @p if it runs, collect the rest of its output
 * (20 s at most, then SIGKILL) and its status. @return its wait status. */
int peer_end(struct peer *p, int sig);

/*
 * Where the buffers of pool @pool of @r are (through @port when not NULL,
 * which counts its rings by queue pair), once no process that is gone has a
 * handle record left: the primary gives back what they held on its channel
 * thread (10 s at most). Fails the test if the census fails.
 */
struct mpops_pktpool_census pool_census_settled(struct mpops_region *r, mpops_off_t pool,
						struct mpops_port *port);

/* SIGKILL and collect every peer begun by this test process that still
 * runs: for teardowns, so that a failed assertion leaves no process behind. */
void peers_end_all(void);

/* The number after "key": in the JSON text @obj; fails the test if none. */
unsigned long long json_num(const char *obj, const char *key);

/*
 * A network namespace "PREFIX<pid>" (in @ns, @len bytes) with a veth pair
 * vxa <-> vxb of two queues each, up, IPv6 off (only a test's frames on the
 * wire), entered by this process so that everything it starts lives there.
 * Fails the test when it cannot. netns_remove() deletes it (and the veth).
 */
void netns_veth_enter(char *ns, size_t len, const char *prefix);
void netns_remove(const char *ns);

/*
 * 2 MiB hugepages are the machine's, and tests in other processes change
 * their number at the same time: huge_take() adds @n to whatever is
 * reserved now, huge_give() takes back what it added, each under an flock
 * of the sysfs file, so that no test restores another's reservation away.
 * @return pages huge_take() added (the kernel may find fewer), -1 when
 * they cannot be changed here (not root).
 */
long huge_take(long n);
void huge_give(long n);

/* Is the wait status a clean exit 0? */
#define EXITED_OK(st) (WIFEXITED(st) && WEXITSTATUS(st) == 0)

#endif
