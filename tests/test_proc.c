/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"
#include "region_priv.h"

static struct mpops_region *r;
static char out[1 << 15];

static pthread_mutex_t ex_mu = PTHREAD_MUTEX_INITIALIZER;
static int exits, last_died;
static int32_t last_pid;

static void on_exit_cb(struct mpops_region *rg, const struct mpops_proc_info *p, int died, void *arg)
{
	(void)rg; (void)arg;
	pthread_mutex_lock(&ex_mu);
	exits++;
	last_died = died;
	last_pid = p->pid;
	pthread_mutex_unlock(&ex_mu);
}

static int wait_exits(int n)
{
	for (int i = 0; i < 5000; i++) {
		int e;

		pthread_mutex_lock(&ex_mu);
		e = exits;
		pthread_mutex_unlock(&ex_mu);
		if (e >= n)
			return 0;
		usleep(1000);
	}
	return -1;
}

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("proc");
	cr_assert_not_null(r);
	cr_assert_eq(mpops_proc_on_exit(r, on_exit_cb, NULL), 0);
}

static void teardown(void)
{
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(proc, .init = setup, .fini = teardown, .timeout = 60);

Test(proc, identity_of_this_process)
{
	uint8_t id[MPOPS_BUILD_ID_MAX], small[4];
	char hex[2 * MPOPS_BUILD_ID_MAX + 1];
	int n = mpops_build_id(id, sizeof(id));

	cr_assert_eq(n, 20, "build-id length %d (linked without --build-id?)", n);
	mpops_build_id_hex(id, (size_t)n, hex);
	cr_assert_eq(strlen(hex), 40);
	cr_assert_eq(mpops_build_id(small, sizeof(small)), -ENOSPC);
	cr_assert_gt(mpops_proc_start_time(getpid()), 0);
	cr_assert_eq(mpops_proc_alive(getpid(), 0), 1);
	cr_assert_eq(mpops_proc_alive(getpid(), mpops_proc_start_time(getpid())), 1);
	cr_assert_eq(mpops_proc_alive(getpid(), mpops_proc_start_time(getpid()) + 1), 0);
	cr_assert_eq(mpops_proc_alive(0, 0), 0);
	cr_assert_eq(mpops_proc_start_time(0x3fffffff), 0);
}

Test(proc, table_lists_the_primary)
{
	struct mpops_proc_info p[4];
	uint8_t id[MPOPS_BUILD_ID_MAX];
	char exe[256];

	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	cr_assert_eq(p[0].pid, getpid());
	cr_assert_eq(p[0].role, MPOPS_ROLE_PRIMARY);
	cr_assert_eq(readlink("/proc/self/exe", exe, sizeof(exe) - 1) > 0, 1);
	cr_assert(strstr(p[0].exe, "test_proc"), "%s", p[0].exe);
	cr_assert_eq(p[0].build_id_len, (uint32_t)mpops_build_id(id, sizeof(id)));
	cr_assert_eq(memcmp(p[0].build_id, id, p[0].build_id_len), 0);
	cr_assert_eq(mpops_proc_on_exit(r, NULL, NULL), -EINVAL);
}

Test(proc, killed_secondary_is_reclaimed_and_primary_keeps_working)
{
	const char *args[] = { "hold", rundir_path(), "proc", NULL };
	struct mpops_proc_info p[4];
	uint8_t id[MPOPS_BUILD_ID_MAX];
	char buf[1024], line[96];
	int fd, st;
	pid_t pid;

	pid = peer_start("mp-secondary", args, &fd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(peer_wait_line(fd, "holding", buf, sizeof(buf), 10000), 0, "%s", buf);
	cr_assert_eq(mpops_proc_list(r, p, 4), 2);
	cr_assert_eq(p[1].pid, pid);
	cr_assert_eq(p[1].role, MPOPS_ROLE_SECONDARY);
	cr_assert(strstr(p[1].exe, "/mp-secondary"), "%s", p[1].exe);
	cr_assert_eq(p[1].build_id_len, 20);
	mpops_build_id(id, sizeof(id));
	cr_assert_neq(memcmp(p[1].build_id, id, 20), 0);	/* another executable */

	kill(pid, SIGKILL);
	st = peer_finish(pid, fd, buf, sizeof(buf), 5000);
	cr_assert(WIFSIGNALED(st));
	cr_assert_eq(wait_exits(1), 0, "no exit callback");
	cr_assert_eq(last_pid, pid);
	cr_assert_eq(last_died, 1);
	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	snprintf(line, sizeof(line), "secondary pid %d (", (int)pid);
	cr_assert_eq(logcap_count(line), 1);
	cr_assert_eq(logcap_count("died without detaching: entry reclaimed"), 1);

	/* A new secondary attaches and the primary still serves it. */
	args[0] = "resolve";
	{
		struct demo_devs_shared *devs;
		mpops_off_t off;

		cr_assert_eq(mpops_alloc(r, sizeof(*devs), 0, "devs", &off), 0);
		devs = mpops_ptr(mpops_region_base(r), off);
		devs->n = 1;
		cr_assert_eq(mpops_ops_id(&mpops_impl_demo_alpha, &devs->dev[0].ops_id), 0);
		cr_assert_eq(mpops_root_set(r, "devs", off), 0);
		st = peer_run("mp-secondary", args, out, sizeof(out));
		cr_assert(EXITED_OK(st), "%s", out);
		cr_assert_eq(devs->dev[0].last_impl, 'A');
	}
	cr_assert_eq(wait_exits(2), 0);
	cr_assert_eq(last_died, 0);	/* that one detached */
}

Test(proc, a_process_killed_inside_the_table_leaves_it_usable)
{
	const char *args[] = { rundir_path(), "proc", "proc.filled", "attach", NULL };
	const char *ok[] = { "attach", rundir_path(), "proc", NULL };
	struct mpops_proc_info p[4];
	int st;

	/* It dies registering itself, holding the table's lock, its entry
	 * written and the live count not yet moved. */
	st = peer_run("crash-peer", args, out, sizeof(out));
	cr_assert(WIFSIGNALED(st), "%s", out);
	cr_assert(strstr(out, "dying at proc.filled"), "%s", out);
	cr_assert_eq(wait_exits(1), 0, "no exit callback");
	cr_assert_eq(last_died, 1);
	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	cr_assert_eq(r->procs->live, 1);
	cr_assert_eq(logcap_count("died holding the lock of the region's process table: repaired"), 1);
	st = peer_run("mp-secondary", ok, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert_eq(wait_exits(2), 0);
	cr_assert_eq(r->procs->live, 1);
}

Test(proc, clean_exit_is_not_a_death)
{
	const char *args[] = { "hold", rundir_path(), "proc", NULL };
	struct mpops_proc_info p[4];
	char buf[1024];
	int fd, st;
	pid_t pid;

	pid = peer_start("mp-secondary", args, &fd);
	cr_assert_eq(peer_wait_line(fd, "holding", buf, sizeof(buf), 10000), 0, "%s", buf);
	kill(pid, SIGTERM);
	st = peer_finish(pid, fd, buf, sizeof(buf), 5000);
	cr_assert(EXITED_OK(st), "%s", buf);
	cr_assert_eq(wait_exits(1), 0);
	cr_assert_eq(last_pid, pid);
	cr_assert_eq(last_died, 0);
	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	cr_assert_eq(logcap_count("died without detaching"), 0);
}

Test(proc, reap_reclaims_entries_of_gone_processes)
{
	struct proc_table_shared *t = r->procs;
	struct mpops_proc_info p[4];
	pid_t child = fork();
	int st;

	if (child == 0)
		_exit(0);
	waitpid(child, &st, 0);
	/* An entry of a process that is gone, as a crash would leave it. */
	shlock_lock(&t->lock);
	t->e[5].state = PROC_LIVE;
	t->e[5].pid = child;
	t->e[5].role = MPOPS_ROLE_SECONDARY;
	t->e[5].start_time = 1;
	strcpy(t->e[5].exe, "/gone");
	t->live++;
	shlock_unlock(&t->lock);
	cr_assert_eq(mpops_proc_list(r, p, 4), 2);
	cr_assert_eq(mpops_proc_reap(r), 1);
	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	cr_assert_eq(wait_exits(1), 0);
	cr_assert_eq(last_pid, child);
	cr_assert_eq(last_died, 1);
	cr_assert_eq(mpops_proc_reap(r), 0);
}

Test(proc, full_table_is_enospc_at_attach)
{
	const char *args[] = { "attach", rundir_path(), "proc", NULL };
	struct proc_table_shared *t = r->procs;
	int st;

	shlock_lock(&t->lock);
	for (int i = 0; i < MPOPS_PROC_MAX; i++) {
		if (t->e[i].state == PROC_LIVE)
			continue;
		/* Entries of a live process (this one), so none is reclaimed. */
		t->e[i].state = PROC_LIVE;
		t->e[i].pid = getpid();
		t->e[i].start_time = mpops_proc_start_time(getpid());
		t->live++;
	}
	shlock_unlock(&t->lock);
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	cr_assert(strstr(out, "attach=-28"), "%s", out);	/* -ENOSPC */
	cr_assert(strstr(out, "process table is full (64 processes attached)"), "%s", out);
}
