/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The registry across separate executables: this test process is the
 * primary (alpha, beta, gamma); mp-secondary is another program that
 * registers gamma, delta, alpha and no beta.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"

static struct mpops_region *r;
static char out[1 << 15];

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("opsmp");
	cr_assert_not_null(r);
}

static void teardown(void)
{
	if (r)
		mpops_region_detach(r);
	rundir_remove();
}

/* argv for mp-secondary CMD RUNDIR opsmp */
static const char *const *peer_args(const char *cmd)
{
	static const char *a[4];

	a[0] = cmd;
	a[1] = rundir_path();
	a[2] = "opsmp";
	a[3] = NULL;
	return a;
}

static struct demo_devs_shared *publish_devs(void)
{
	const struct mpops_ops_impl *impls[] = {
		&mpops_impl_demo_alpha, &mpops_impl_demo_beta, &mpops_impl_demo_gamma,
	};
	struct demo_devs_shared *devs;
	mpops_off_t off;

	cr_assert_eq(mpops_alloc(r, sizeof(*devs), 0, "demo.devs", &off), 0);
	devs = mpops_ptr(mpops_region_base(r), off);
	devs->n = 3;
	for (unsigned i = 0; i < 3; i++) {
		devs->dev[i].index = i;
		cr_assert_eq(mpops_ops_id(impls[i], &devs->dev[i].ops_id), 0);
	}
	cr_assert_eq(mpops_root_set(r, "devs", off), 0);
	return devs;
}

TestSuite(ops_mp, .init = setup, .fini = teardown, .timeout = 60);

Test(ops_mp, secondary_binary_resolves_ids_to_its_own_functions)
{
	struct demo_devs_shared *devs = publish_devs();
	char line[128];
	mpops_ops_id_t delta;
	int st, fd;
	pid_t pid;

	pid = peer_start("mp-secondary", peer_args("resolve"), &fd);
	cr_assert_gt(pid, 0);
	out[0] = '\0';
	st = peer_finish(pid, fd, out, sizeof(out), 30000);
	cr_assert(EXITED_OK(st), "secondary failed:\n%s", out);

	/* Same names, same IDs, though registered in another order. */
	for (unsigned i = 0; i < 3; i++) {
		static const char *names[] = { "alpha", "beta", "gamma" };

		snprintf(line, sizeof(line), "dev%u id=%u name=demo/%s", i,
			 devs->dev[i].ops_id, names[i]);
		cr_assert(strstr(out, line), "missing '%s' in:\n%s", line, out);
	}
	/* alpha and gamma ran the secondary's own code, in the secondary. */
	cr_assert_eq(devs->dev[0].last_impl, 'A');
	cr_assert_eq(devs->dev[0].last_pid, pid);
	cr_assert_eq(devs->dev[0].calls, 1);
	cr_assert_eq(devs->dev[2].last_impl, 'C');
	cr_assert_eq(devs->dev[2].last_pid, pid);
	cr_assert(strstr(out, "resolve=0 ret=65 own=1"), "%s", out);
	/* beta is not in that program: the dummy answered, nothing ran. */
	cr_assert_eq(devs->dev[1].calls, 0);
	cr_assert(strstr(out, "demo/beta is not registered in this process: is the driver linked?"),
		  "%s", out);
	snprintf(line, sizeof(line), "resolve=%d ret=%d", -ENOENT, -ENOTSUP);
	cr_assert(strstr(out, line), "%s", out);
	/* delta was appended by the secondary: the next ID, a dummy here. */
	cr_assert_eq(mpops_ops_find("demo", "delta", &delta), 0);
	cr_assert_gt(delta, devs->dev[2].ops_id);
	snprintf(line, sizeof(line), "delta=%u", delta);
	cr_assert(strstr(out, line), "%s", out);
	cr_assert_eq(MPOPS_OPS(demo, delta)->notify(&devs->dev[0], 0), -ENOTSUP);
}

Test(ops_mp, origin_bug_raw_pointer_crashes_secondary_while_id_works)
{
	struct origin_bug_dev *o;
	mpops_off_t off;
	int st, fd;
	pid_t pid;

	cr_assert_eq(mpops_alloc(r, sizeof(*o), 0, "origin.dev", &off), 0);
	o = mpops_ptr(mpops_region_base(r), off);
	o->raw_notify = demo_alpha_notify;	/* the origin's bug, on purpose */
	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_alpha, &o->dev.ops_id), 0);
	cr_assert_eq(mpops_root_set(r, "origin", off), 0);
	/* In the process that stored it, the pointer works. */
	cr_assert_eq(o->raw_notify(&o->dev, 0), 'A');

	pid = peer_start("mp-secondary", peer_args("origin"), &fd);
	cr_assert_gt(pid, 0);
	out[0] = '\0';
	st = peer_finish(pid, fd, out, sizeof(out), 30000);
	cr_assert(EXITED_OK(st), "secondary failed:\n%s", out);
	cr_assert(strstr(out, "same=0"), "%s", out);
	cr_assert(strstr(out, "raw-call: signal "), "the raw pointer did not crash:\n%s", out);
	cr_assert(strstr(out, "id-call: 65"), "%s", out);
	cr_assert_eq(o->dev.last_impl, 'A');
	cr_assert_eq(o->dev.last_pid, pid);
}

/* @exe's demo class differs from ours: its attach is -EPROTO, one named
 * line; it leaves no entry behind, and a matching secondary still attaches. */
static void attach_is_refused_as_another_class(const char *exe)
{
	struct mpops_proc_info p[4];
	char line[64];
	int st;

	publish_devs();
	st = peer_run(exe, peer_args("attach"), out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, out);
	snprintf(line, sizeof(line), "attach=%d", -EPROTO);
	cr_assert(strstr(out, line), "%s", out);
	cr_assert(strstr(out, "ops class 'demo' differs between this process"), "%s", out);
	cr_assert(strstr(out, "registering demo/"), "%s", out);
	cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	st = peer_run("mp-secondary", peer_args("attach"), out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
}

Test(ops_mp, mismatched_signature_is_named_error_not_crash)
{
	attach_is_refused_as_another_class("mp-secondary-mismatch");
}

/* notify takes a demo_queue_t: the member list reads the same in both
 * programs, the type behind it does not. */
Test(ops_mp, a_typedef_that_changes_size_behind_the_same_member_list_is_eproto)
{
	attach_is_refused_as_another_class("mp-secondary-queue-wide");
}

Test(ops_mp, a_typedef_that_changes_signedness_behind_the_same_member_list_is_eproto)
{
	attach_is_refused_as_another_class("mp-secondary-queue-signed");
}

/* Constructors run before main() can install a log callback: a load-time
 * registration failure is kept, then logged through the callback by the
 * bind, which fails with its errno. Nothing reaches stderr before main. */
Test(ops_mp, load_time_failures_are_logged_through_the_callback_at_bind)
{
	char line[64];
	int st;

	st = peer_run("ops-overflow", NULL, out, sizeof(out));
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, out);
	cr_assert_eq(strncmp(out, "main\n", 5), 0, "printed before main:\n%s", out);
	cr_assert(strstr(out, "log: mpops_ops_bind: a registration failed at load time, before a log callback could be installed: ops implementation demo/i"),
		  "%s", out);
	cr_assert(strstr(out, ": this process already has 256 implementations, the most it can register"),
		  "%s", out);
	snprintf(line, sizeof(line), "bind=%d\n", -ENOSPC);
	cr_assert(strstr(out, line), "%s", out);
	cr_assert_null(strstr(out, "mpops: "), "a line went to stderr:\n%s", out);
}
