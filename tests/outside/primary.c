/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * outside-primary SECONDARY=EXPECT...
 *
 * The primary of region "outside", in a runtime directory it makes and
 * removes: it publishes a fast and a slow blinker (their IDs in shared
 * memory), then starts each SECONDARY, another executable, telling it
 * which implementations it should have (EXPECT: "fast,slow", "fast",
 * "none"), waits for it by pid (SIGKILL after 30 s) and checks, in the
 * shared devices, that each call ran in that secondary's own code.
 * Exit 0 when every secondary passed.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blink.h"

extern char **environ;

#define REGION "outside"
#define WAIT_MS 30000

static const char *const names[BLINK_DEVS] = { "fast", "slow" };

/* Wait for @pid, at most WAIT_MS; kill it when it overstays. */
static int wait_for(pid_t pid, int *status)
{
	struct timespec ms = { 0, 1000000 };

	for (int t = 0; t < WAIT_MS; t++) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0)
			return -errno;
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -ETIMEDOUT;
}

/* Start @exe for @expect, wait for it, check what it did to @devs. */
static int run_secondary(const char *rundir, struct blink_devs_shared *devs,
			 const char *exe, const char *expect)
{
	char *argv[] = { (char *)exe, (char *)rundir, REGION, (char *)expect, NULL };
	struct blink_devs_shared before = *devs;
	int rc, status;
	pid_t pid;

	if ((rc = posix_spawn(&pid, exe, NULL, NULL, argv, environ)) != 0) {
		printf("FAIL %s: cannot start it: %s\n", exe, strerror(rc));
		return -1;
	}
	if ((rc = wait_for(pid, &status)) < 0) {
		printf("FAIL %s (%s): %s\n", exe, expect,
		       rc == -ETIMEDOUT ? "still running after 30 s: killed" : strerror(-rc));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL %s (%s): exit status %#x\n", exe, expect, status);
		return -1;
	}
	for (unsigned i = 0; i < BLINK_DEVS; i++) {
		const struct blink_dev_shared *d = &devs->dev[i];
		int mine = d->last_pid == pid;

		if (strstr(expect, names[i]) ? !mine || d->blinks <= before.dev[i].blinks ||
						       d->opened != before.dev[i].opened + 1
					     : mine || d->blinks != before.dev[i].blinks) {
			printf("FAIL %s (%s): blink/%s: last pid %d, blinks %llu -> %llu, opened %u -> %u\n",
			       exe, expect, names[i], (int)d->last_pid,
			       (unsigned long long)before.dev[i].blinks,
			       (unsigned long long)d->blinks, before.dev[i].opened, d->opened);
			return -1;
		}
	}
	printf("ok %s (%s): pid %d ran its own code for those, the dummy for the others\n",
	       exe, expect, (int)pid);
	return 0;
}

int main(int argc, char **argv)
{
	const struct mpops_ops_impl *impls[BLINK_DEVS] = {
		&mpops_impl_blink_fast, &mpops_impl_blink_slow,
	};
	char rundir[] = "/tmp/mpops-outside-rt.XXXXXX";
	struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir };
	struct blink_devs_shared *devs;
	struct mpops_region *r;
	int failed = 0, rc;
	mpops_off_t off;
	char who[32];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(rundir)) {
		perror("outside-primary: mkdtemp");
		return 1;
	}
	if ((rc = mpops_region_create(REGION, &o, &r)) < 0) {
		rmdir(rundir);
		return 1;
	}
	if ((rc = mpops_alloc(r, sizeof(*devs), 0, BLINK_ROOT, &off)) < 0)
		goto out;
	devs = mpops_ptr(mpops_region_base(r), off);
	for (unsigned i = 0; i < BLINK_DEVS; i++)
		if ((rc = mpops_ops_id(impls[i], &devs->dev[i].ops_id)) < 0)
			goto out;
	/* The primary's own calls, through the same IDs. */
	MPOPS_OPS(blink, devs->dev[0].ops_id)->name(who, sizeof(who));
	printf("primary %s: fast is ID %u, slow is ID %u\n", who, devs->dev[0].ops_id,
	       devs->dev[1].ops_id);
	if ((rc = mpops_root_set(r, BLINK_ROOT, off)) < 0)
		goto out;
	for (int a = 1; a < argc; a++) {
		char exe[4096];
		char *eq;

		outside_copy_name(exe, argv[a], sizeof(exe));
		if (!(eq = strrchr(exe, '='))) {
			printf("FAIL: '%s' is not SECONDARY=EXPECT\n", argv[a]);
			failed++;
			continue;
		}
		*eq = '\0';
		failed += run_secondary(rundir, devs, exe, eq + 1) < 0;
	}
out:
	mpops_region_detach(r);
	if (rmdir(rundir) < 0)
		printf("FAIL: runtime directory %s not empty at the end: %s\n", rundir,
		       strerror(errno));
	if (rc < 0)
		printf("FAIL: setting up the region: %s\n", strerror(-rc));
	return rc < 0 || failed ? 1 : 0;
}
