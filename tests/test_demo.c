/* SPDX-License-Identifier: BSD-3-Clause */
/* The main demo, end to end: backend, primary, secondaries, JSON out. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

static char out[1 << 16];

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
