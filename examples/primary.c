/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-example: the quick-start example.
 *
 * The primary creates a region with two queues. Each queue stores which
 * doorbell implementation rings it as an ops ID (queue 0: doorbell/eventfd,
 * queue 1: doorbell/counter), never as a function pointer, and is an mpops
 * object, so every process gets its own fd for queue 0's eventfd. It then
 * starts secondaries, a separate executable with its code at other
 * addresses, which resolve the IDs in their own tables and ring every
 * doorbell; it checks that each ring arrived and audits the region for
 * process-local pointers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "doorbell.h"

#define PROG "mpops-example"
#define SECONDARY_EXE "mpops-example-secondary"
#define SECONDARIES_MAX 32
#define RINGS_MAX 10000000ul
/* A secondary still running by then is killed: the example must end, with
 * every process it started waited for. */
#define SECONDARY_TIMEOUT_MS 60000

extern char **environ;

struct options {
	unsigned secondaries;
	unsigned long rings;
	const char *runtime_dir;
};

/* What one secondary reported for one queue (from the channel thread). */
struct report_local {
	int32_t pid;
	struct example_report rp;
};

/*
 * The primary's process-local state. At file scope because the queue
 * object's attach hook needs the eventfds and takes no argument of ours.
 * The channel thread uses it too, under mu: the main thread fills a
 * queue's efd, then publishes the queue in q under mu; the reports are
 * written under mu.
 */
static struct {
	pthread_mutex_t mu;
	struct queue_shared *q[QUEUES];	/* in this process's mapping */
	int efd[QUEUES];		/* each queue's eventfd, -1 if none */
	struct report_local *reports;
	unsigned nreports, reports_cap;
} P = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
};

static const struct mpops_ops_impl *const queue_doorbell[QUEUES] = {
	&mpops_impl_doorbell_eventfd,
	&mpops_impl_doorbell_counter,
};

/* ==== per-process fds and the control channel =========================== */

/* The primary's own slot: a dup of its eventfd, so the detach hook can
 * close the slot's fd in every process alike. */
int queue_fd_get(struct mpops_region *r, mpops_obj_id_t id,
		 const struct queue_shared *q, int *fd)
{
	(void)r;
	(void)id;
	*fd = -1;
	if (q->index >= QUEUES)
		return -EINVAL;
	if (P.efd[q->index] < 0)
		return 0;
	*fd = fcntl(P.efd[q->index], F_DUPFD_CLOEXEC, 0);
	return *fd < 0 ? -errno : 0;
}

/* A secondary's queue_fd_get(): reply with the eventfd of the queue whose
 * object ID it sent, or with no fd if that queue has none. */
static int on_queue_fd(struct mpops_region *r, const struct mpops_msg *req,
		       struct mpops_msg *reply, void *arg)
{
	mpops_obj_id_t id;
	int rc = -ENOENT;

	(void)r;
	(void)arg;
	if (req->len != sizeof(id))
		return -EBADMSG;
	memcpy(&id, req->data, sizeof(id));
	pthread_mutex_lock(&P.mu);
	for (unsigned i = 0; i < QUEUES; i++) {
		if (P.q[i] && P.q[i]->obj_id == id) {
			/* Borrowed: the fd stays the primary's, the peer gets its own. */
			rc = P.efd[i] < 0 ? 0 : mpops_msg_add_fd(reply, P.efd[i]);
			break;
		}
	}
	pthread_mutex_unlock(&P.mu);
	return rc;
}

static int on_report(struct mpops_region *r, const struct mpops_msg *req,
		     struct mpops_msg *reply, void *arg)
{
	int rc = -ENOSPC;

	(void)r;
	(void)reply;
	(void)arg;
	if (req->len != sizeof(struct example_report))
		return -EBADMSG;
	pthread_mutex_lock(&P.mu);
	if (P.nreports < P.reports_cap) {
		struct report_local *rl = &P.reports[P.nreports++];

		rl->pid = req->peer_pid;
		memcpy(&rl->rp, req->data, sizeof(rl->rp));
		rc = 0;
	}
	pthread_mutex_unlock(&P.mu);
	return rc;
}

/* ==== the queues ======================================================== */

static int queues_create(struct mpops_region *r)
{
	mpops_ops_id_t obj_cls;
	int rc;

	if ((rc = mpops_ops_id(&mpops_impl_mpops_obj_queue, &obj_cls)) < 0)
		return rc;
	for (unsigned i = 0; i < QUEUES; i++) {
		struct queue_shared *q;
		char name[MPOPS_NAME_MAX + 1];
		mpops_off_t off;
		int efd = -1;

		snprintf(name, sizeof(name), QUEUE_ROOT_FMT, i);
		if ((rc = mpops_alloc(r, sizeof(*q), 64, name, &off)) < 0)
			return rc;
		q = mpops_ptr(mpops_region_base(r), off);
		q->index = (uint16_t)i;
		/* The ID of the implementation, not its address. */
		if ((rc = mpops_ops_id(queue_doorbell[i], &q->ops_id)) < 0)
			return rc;
		if (queue_doorbell[i] == &mpops_impl_doorbell_eventfd) {
			/* Non-blocking: reading it when nobody rang is not an error. */
			efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (efd < 0)
				return -errno;
		}
		P.efd[i] = efd; /* run() closes it from here on */
		if ((rc = mpops_obj_create(r, obj_cls, off, name, &q->obj_id)) < 0)
			return rc;
		/* Now on_queue_fd() may hand out efd[i]. */
		pthread_mutex_lock(&P.mu);
		P.q[i] = q;
		pthread_mutex_unlock(&P.mu);
		/* Last: a secondary finds only a finished queue. */
		if ((rc = mpops_root_set(r, name, off)) < 0)
			return rc;
	}
	return 0;
}

/* Resolve every queue as any process must before ringing, and print it. */
static int queues_show(const struct options *o, struct mpops_region *r,
		       struct queue_view *v)
{
	char what[128];
	void *slot;
	int rc;

	for (unsigned i = 0; i < QUEUES; i++) {
		if ((rc = queue_view_get(P.q[i], &v[i])) < 0)
			return rc;
		if ((rc = mpops_obj_slot(r, P.q[i]->obj_id, &slot)) < 0)
			return rc;
		v[i].ops->describe(what, sizeof(what));
		printf("  queue %u holds ops ID %u = doorbell/%s: %s\n", i, v[i].ops_id,
		       v[i].impl, what);
	}
	printf("%u secondar%s resolve%s the IDs in their own code and ring each doorbell %lu times:\n\n",
	       o->secondaries, o->secondaries == 1 ? "y" : "ies",
	       o->secondaries == 1 ? "s" : "", o->rings);
	queue_view_header(stdout);
	for (unsigned i = 0; i < QUEUES; i++) {
		queue_view_print(stdout, "primary", &v[i]);
		if (!v[i].own) {
			fprintf(stderr, PROG ": queue %u resolved to a table that is not this program's\n", i);
			return -EPROTO;
		}
	}
	return 0;
}

/* ==== the secondaries =================================================== */

/* mpops-example-secondary in this program's directory. */
static int secondary_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len);
	char *slash;

	if (n < 0)
		return -errno;
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	if (!(slash = strrchr(buf, '/')))
		return -ENOENT;
	if ((size_t)(slash + 1 - buf) + sizeof(SECONDARY_EXE) > len)
		return -ENAMETOOLONG;
	memcpy(slash + 1, SECONDARY_EXE, sizeof(SECONDARY_EXE));
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for child @pid until @deadline (now_ms() time), then kill it. */
static int child_wait(pid_t pid, int64_t deadline, int *status)
{
	const struct timespec tick = { .tv_nsec = 5 * 1000 * 1000 };

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline) {
			fprintf(stderr, PROG ": secondary %d did not finish in %d s: killing it\n",
				(int)pid, SECONDARY_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			while ((w = waitpid(pid, status, 0)) < 0 && errno == EINTR)
				;
			return w < 0 ? -errno : 0;
		}
		nanosleep(&tick, NULL);
	}
}

/*
 * Start @o->secondaries secondaries and wait for all of them (also when
 * one fails to start). @return the number that did not start or did not
 * exit 0, or -errno.
 */
static int secondaries_run(const struct options *o, const char *rundir,
			   struct mpops_region *r)
{
	char path[PATH_MAX], rings[24], name[MPOPS_NAME_MAX + 1];
	char *argv[] = { (char *)SECONDARY_EXE, (char *)rundir, name, rings, NULL };
	pid_t pid[SECONDARIES_MAX];
	unsigned started = 0;
	int64_t deadline;
	int rc, failed = 0;

	if ((rc = secondary_path(path, sizeof(path))) < 0) {
		fprintf(stderr, PROG ": cannot find the directory of this program: %s\n",
			strerror(-rc));
		return rc;
	}
	snprintf(rings, sizeof(rings), "%lu", o->rings);
	snprintf(name, sizeof(name), "%s", mpops_region_name(r));
	/* What the children print must come after what we printed. */
	fflush(stdout);
	for (; started < o->secondaries; started++) {
		rc = posix_spawn(&pid[started], path, NULL, NULL, argv, environ);
		if (rc) {
			fprintf(stderr, PROG ": cannot start %s: %s%s\n", path, strerror(rc),
				rc == ENOENT ? " (ninja builds it with " PROG ")" : "");
			failed += (int)(o->secondaries - started);
			break;
		}
	}
	deadline = now_ms() + SECONDARY_TIMEOUT_MS;
	for (unsigned i = 0; i < started; i++) {
		int st;

		if ((rc = child_wait(pid[i], deadline, &st)) < 0) {
			fprintf(stderr, PROG ": waiting for secondary %d: %s\n", (int)pid[i],
				strerror(-rc));
			failed++;
		} else if (WIFSIGNALED(st)) {
			fprintf(stderr, PROG ": secondary %d was killed by signal %d (%s)\n",
				(int)pid[i], WTERMSIG(st), strsignal(WTERMSIG(st)));
			failed++;
		} else if (WEXITSTATUS(st) != 0) {
			fprintf(stderr, PROG ": secondary %d exited with status %d\n",
				(int)pid[i], WEXITSTATUS(st));
			failed++;
		}
	}
	return failed;
}

/* ==== the verdict ======================================================= */

/* What the eventfd holds, and reset it. */
static int eventfd_take(int fd, uint64_t *v)
{
	eventfd_t x;

	*v = 0;
	if (eventfd_read(fd, &x) < 0)
		return errno == EAGAIN ? 0 : -errno;
	*v = x;
	return 0;
}

/* Compare every count with what the secondaries were told to do. */
static int results_check(const struct options *o, const struct queue_view *v)
{
	uint64_t want = (uint64_t)o->secondaries * o->rings;
	const char *via = o->secondaries == 1 ? "secondary's own fd" : "secondaries' own fds";
	const struct report_local *other = NULL;
	int bad = 0, rc;

	printf("\n");
	for (unsigned i = 0; i < QUEUES; i++) {
		struct queue_shared *q = P.q[i];
		uint64_t rang = atomic_load(&q->rings), failed = atomic_load(&q->failed);

		if (P.efd[i] >= 0) {
			uint64_t got;

			if ((rc = eventfd_take(P.efd[i], &got)) < 0) {
				fprintf(stderr, PROG ": cannot read the eventfd of queue %u: %s\n",
					i, strerror(-rc));
				return rc;
			}
			printf("queue %u doorbell/%s: %" PRIu64 " rings received through %u %s\n",
			       i, v[i].impl, got, o->secondaries, via);
			if (got != want || rang != want) {
				fprintf(stderr, PROG ": error: queue %u: the eventfd got %" PRIu64 " and the counter says %" PRIu64 ", %" PRIu64 " expected\n",
					i, got, rang, want);
				bad = 1;
			}
		} else {
			printf("queue %u doorbell/%s: %" PRIu64 " rings counted in the shared queue\n",
			       i, v[i].impl, rang);
			if (rang != want) {
				fprintf(stderr, PROG ": error: queue %u: %" PRIu64 " rings, %" PRIu64 " expected\n",
					i, rang, want);
				bad = 1;
			}
		}
		if (failed) {
			fprintf(stderr, PROG ": error: queue %u: %" PRIu64 " rings failed\n", i, failed);
			bad = 1;
		}
	}

	/* The secondaries' reports: channel thread done, every child waited. */
	pthread_mutex_lock(&P.mu);
	if (P.nreports != o->secondaries * QUEUES) {
		fprintf(stderr, PROG ": error: %u reports from the secondaries, %u expected\n",
			P.nreports, o->secondaries * QUEUES);
		bad = 1;
	}
	for (unsigned k = 0; k < P.nreports; k++) {
		const struct report_local *rl = &P.reports[k];

		if (rl->rp.queue >= QUEUES || rl->rp.ops_id != P.q[rl->rp.queue]->ops_id ||
		    !rl->rp.own) {
			fprintf(stderr, PROG ": error: secondary %d resolved queue %u to ID %u, own table: %s\n",
				(int)rl->pid, rl->rp.queue, rl->rp.ops_id, rl->rp.own ? "yes" : "no");
			bad = 1;
		} else if (rl->rp.queue == 0 && !other) {
			other = rl;
		}
	}
	if (other)
		printf("ring() of doorbell/%s: %#" PRIxPTR " in the primary, %#" PRIx64 " in secondary %d:\n"
		       "  a function pointer stored in shared memory would be wrong there; ops ID %u is right in both\n",
		       v[0].impl, v[0].ring, other->rp.ring, (int)other->pid, v[0].ops_id);
	pthread_mutex_unlock(&P.mu);
	return bad ? -EPROTO : 0;
}

/* ==== main ============================================================== */

static int run(const struct options *o, const char *rundir)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .runtime_dir = rundir };
	struct queue_view v[QUEUES];
	struct mpops_region *r;
	char name[MPOPS_NAME_MAX + 1];
	int rc, failed, n;

	for (unsigned i = 0; i < QUEUES; i++)
		P.efd[i] = -1;
	P.reports_cap = o->secondaries * QUEUES;
	P.reports = calloc(P.reports_cap, sizeof(*P.reports));
	if (!P.reports)
		return -ENOMEM;
	snprintf(name, sizeof(name), "example-%d", (int)getpid());
	if ((rc = mpops_region_create(name, &ro, &r)) < 0) {
		fprintf(stderr, PROG ": cannot create region '%s' in %s: %s\n", name, rundir,
			strerror(-rc));
		goto out_free;
	}
	if ((rc = mpops_channel_register(r, EXAMPLE_MSG_QUEUE_FD, on_queue_fd, NULL)) < 0 ||
	    (rc = mpops_channel_register(r, EXAMPLE_MSG_REPORT, on_report, NULL)) < 0)
		goto out;
	if ((rc = queues_create(r)) < 0) {
		fprintf(stderr, PROG ": cannot set up the queues: %s\n", strerror(-rc));
		goto out;
	}
	printf(PROG ": region '%s' in %s\n", name, rundir);
	if ((rc = queues_show(o, r, v)) < 0)
		goto out;

	failed = secondaries_run(o, rundir, r);
	if (failed < 0) {
		rc = failed;
		goto out;
	}
	if (failed) {
		/* The counts would only repeat that. */
		fprintf(stderr, PROG ": error: %d of %u secondaries failed\n", failed,
			o->secondaries);
		rc = -ECHILD;
	} else {
		rc = results_check(o, v);
	}

	n = mpops_audit(r, NULL, NULL, 0);
	if (n < 0) {
		fprintf(stderr, PROG ": audit failed: %s\n", strerror(-n));
		rc = rc ? rc : n;
	} else {
		printf("audit: %d process-local pointer%s in shared memory\n", n, n == 1 ? "" : "s");
		if (n)
			rc = rc ? rc : -EPROTO;
	}
out:
	/* Runs this process's detach hooks (closing its dups), removes the
	 * socket and the lock file. */
	mpops_region_detach(r);
out_free:
	for (unsigned i = 0; i < QUEUES; i++)
		if (P.efd[i] >= 0)
			close(P.efd[i]);
	free(P.reports);
	return rc;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " [--secondaries N] [--rings N] [--runtime-dir DIR]\n"
		"\n"
		"Creates a region with %d queues whose doorbells are stored as ops IDs,\n"
		"starts N secondaries (" SECONDARY_EXE ", next to this program) that\n"
		"resolve the IDs in their own code and ring each doorbell, and checks\n"
		"that every ring arrived. Exit status 0 when it did, 1 when not, 2 for\n"
		"bad options.\n"
		"\n"
		"  --secondaries N    secondaries to start, 1..%d (default 2)\n"
		"  --rings N          rings per secondary and queue, 0..%lu (default 1000)\n"
		"  --runtime-dir DIR  directory of the control socket and lock file\n"
		"                     (default: a new one under /tmp, removed at the end)\n"
		"  --help             this text\n",
		QUEUES, SECONDARIES_MAX, RINGS_MAX);
}

static int number(const char *opt, const char *s, unsigned long lo, unsigned long hi,
		  unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *out < lo || *out > hi) {
		fprintf(stderr, PROG ": --%s takes a number from %lu to %lu, not '%s'\n",
			opt, lo, hi, s);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "secondaries", required_argument, NULL, 's' },
		{ "rings", required_argument, NULL, 'r' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .secondaries = 2, .rings = 1000 };
	char tmpdir[] = "/tmp/mpops-example-XXXXXX";
	const char *rundir;
	unsigned long n;
	int c, rc, made = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (number("secondaries", optarg, 1, SECONDARIES_MAX, &n) < 0)
				return 2;
			o.secondaries = (unsigned)n;
			break;
		case 'r':
			if (number("rings", optarg, 0, RINGS_MAX, &o.rings) < 0)
				return 2;
			break;
		case 'd':
			o.runtime_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	/* A reader that leaves early (| head) must not kill us before we have
	 * waited for the secondaries and removed our files. */
	signal(SIGPIPE, SIG_IGN);

	if (o.runtime_dir) {
		struct stat st;

		rundir = o.runtime_dir;
		/* mpops creates it if needed; then it is ours to remove. */
		made = stat(rundir, &st) < 0 && errno == ENOENT;
	} else {
		if (!mkdtemp(tmpdir)) {
			fprintf(stderr, PROG ": cannot create a directory under /tmp: %s\n",
				strerror(errno));
			return 1;
		}
		rundir = tmpdir;
		made = 1;
	}
	rc = run(&o, rundir);
	if (made && rmdir(rundir) < 0 && errno != ENOENT) {
		int e = errno;

		fprintf(stderr, PROG ": cannot remove %s: %s\n", rundir, strerror(e));
		rc = rc ? rc : -e;
	}
	if (rc < 0) {
		fprintf(stderr, PROG ": FAILED\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}
