/* SPDX-License-Identifier: BSD-3-Clause */
/* The main demo, end to end: backend, primary, secondaries, JSON out. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static char out[1 << 16];
static pid_t backend = -1;
static int backend_fd = -1;
static char backend_out[1 << 14];

static char sock[128];

static void setup(void)
{
	rundir_make();
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
}

static void teardown(void)
{
	if (backend > 0) {
		kill(backend, SIGKILL);
		peer_finish(backend, backend_fd, backend_out, sizeof(backend_out), 5000);
		backend = -1;
	}
	rundir_remove();
}

TestSuite(demo, .init = setup, .fini = teardown);

/* mpops-vhost with 2 queue pairs in @mode at sock, for --vhost-socket. */
static void backend_start(const char *mode, const char *extra)
{
	const char *b[] = { "--socket", sock, "--queues", "2", "--mode", mode, "--kick-driven",
			    extra, NULL };
	struct stat st;

	backend = peer_start("../drivers/virtio/backend/mpops-vhost", b, &backend_fd);
	cr_assert_gt(backend, 0);
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
}

/* Check the demo's JSON: a primary and @n secondaries that moved packets. */
static void check(int n)
{
	const char *p = strstr(out, "{\"processes\": [");
	int secondaries = 0;

	cr_assert_not_null(p, "no JSON in:\n%s", out);
	cr_assert(strstr(p, "{\"role\": \"primary\", \"pid\": "), "%s", p);
	cr_assert(strstr(p, "\"exit_status\": 0}"), "%s", p);
	for (const char *s = p; (s = strstr(s, "{\"role\": \"secondary\"")); s++) {
		const char *rx = strstr(s, "\"rx_packets\": "), *err = strstr(s, "\"errors\": ");
		const char *ex = strstr(s, "\"exit_status\": ");

		cr_assert(rx && err && ex, "%s", s);
		cr_assert_gt(strtoull(rx + 14, NULL, 10), 1000, "%s", s);
		cr_assert_eq(strtoull(err + 10, NULL, 10), 0, "%s", s);
		cr_assert_eq(atoi(ex + 15), 0, "%s", s);
		secondaries++;
	}
	cr_assert_eq(secondaries, n, "%s", p);
}

Test(demo, two_secondaries_loop_packets_through_our_backend, .timeout = 60)
{
	const char *a[] = { "--json", "--duration", "2", NULL };
	int st = peer_run("../app/mpops-demo", a, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	check(2);
}

Test(demo, server_mode_kick_driven_without_mergeable, .timeout = 60)
{
	const char *a[] = { "--json", "--duration", "2", "--secondaries", "3", "--vhost-server",
			    "--kick-driven", "--mergeable", "off", NULL };
	int st = peer_run("../app/mpops-demo", a, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	check(3);
}

Test(demo, bad_arguments_are_refused, .timeout = 10)
{
	const char *a[] = { "--secondaries", "99", NULL };
	int st = peer_run("../app/mpops-demo", a, out, sizeof(out));

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s", out);
	cr_assert(strstr(out, "bad arguments"), "%s", out);
}

/*
 * A switch returns a packet on whichever queue its thread polls: with
 * mpops-vhost --cross, every packet of queue pair 0 comes back on 1 and the
 * reverse. The demo used to count each one as an error and exit 1.
 */
Test(demo, packets_returned_on_another_queue_count_toward_the_total, .timeout = 60)
{
	const char *a[] = { "--json", "--duration", "2", "--vhost-socket", sock, NULL };
	unsigned long long rx = 0;
	int status;

	backend_start("loopback", "--cross");
	status = peer_run("../app/mpops-demo", a, out, sizeof(out));
	cr_assert(EXITED_OK(status), "%s", out);
	check(2);
	/* Every packet a secondary received was the other one's. */
	for (const char *s = out; (s = strstr(s, "{\"role\": \"secondary\"")); s++) {
		cr_assert_eq(json_num(s, "rx_other_queues"), json_num(s, "rx_packets"), "%s", s);
		rx += json_num(s, "rx_packets");
	}
	cr_assert_eq(json_num(strstr(out, "\"total\": "), "rx_packets"), rx, "%s", out);
	kill(backend, SIGTERM);
	status = peer_finish(backend, backend_fd, backend_out, sizeof(backend_out), 10000);
	backend = -1;
	cr_assert(EXITED_OK(status), "%s", backend_out);
	cr_assert(strstr(backend_out, "mode loopback (cross)"), "%s", backend_out);
}

/*
 * --runtime-dir naming a directory that does not exist: the demo makes it
 * (mode 0700) before it starts the backend, whose socket goes there, and
 * removes it at exit. It used to start the backend first, which could not
 * listen there, and fail after a 10 s wait for it.
 */
Test(demo, runtime_dir_that_does_not_exist_is_made_and_removed_at_exit, .timeout = 60)
{
	char top[128], dir[160];
	const char *a[] = { "--json", "--duration", "2", "--runtime-dir", dir, NULL };
	struct stat st;
	pid_t pid;
	int fd, status, seen = 0;

	snprintf(top, sizeof(top), "%s/new", rundir_path());
	snprintf(dir, sizeof(dir), "%s/runtime", top);
	pid = peer_start("../app/mpops-demo", a, &fd);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 500 && !seen; i++) {
		seen = stat(dir, &st) == 0;
		if (!seen)
			usleep(10000);
	}
	cr_assert(seen, "the demo did not make %s", dir);
	cr_assert_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
	cr_assert_eq(stat(top, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
	out[0] = '\0';
	status = peer_finish(pid, fd, out, sizeof(out), 30000);
	cr_assert(EXITED_OK(status), "%s", out);
	check(2);
	/* What it made is gone; what was there before stays. */
	cr_assert_eq(stat(top, &st), -1, "%s is still there", top);
	cr_assert_eq(stat(rundir_path(), &st), 0);
}

Test(demo, runtime_dir_that_exists_is_kept, .timeout = 60)
{
	const char *a[] = { "--json", "--duration", "1", "--runtime-dir", rundir_path(), NULL };
	struct stat st;
	int status = peer_run("../app/mpops-demo", a, out, sizeof(out));

	cr_assert(EXITED_OK(status), "%s", out);
	check(2);
	cr_assert_eq(stat(rundir_path(), &st), 0, "the demo removed a directory it did not make");
}

Test(demo, runtime_dir_that_cannot_be_made_is_one_line_and_exit_1, .timeout = 10)
{
	char file[128], dir[160];
	const char *a[] = { "--runtime-dir", dir, NULL };
	FILE *f;
	int st;

	/* Under a regular file: ENOTDIR, before anything is started. */
	snprintf(file, sizeof(file), "%s/file", rundir_path());
	snprintf(dir, sizeof(dir), "%s/sub", file);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	st = peer_run("../app/mpops-demo", a, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "not one line:\n%s", out);
	cr_assert(strstr(out, "mpops-demo: cannot create the runtime directory"), "%s", out);
	cr_assert(strstr(out, "Not a directory: pick another --runtime-dir"), "%s", out);
}

/* Totals across queues still catch a backend that returns nothing. */
Test(demo, backend_that_returns_nothing_fails_the_demo, .timeout = 60)
{
	const char *a[] = { "--duration", "1", "--vhost-socket", sock, NULL };
	int status;

	backend_start("sink", NULL);
	status = peer_run("../app/mpops-demo", a, out, sizeof(out));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", out);
	cr_assert(strstr(out, "packets sent, none came back: the backend must send them back"),
		  "%s", out);
	cr_assert(strstr(out, "FAILED"), "%s", out);
}
