/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"
#include "ops_priv.h"

static struct mpops_region *r;
static char out[1 << 16];

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("info");
	cr_assert_not_null(r);
}

static void teardown(void)
{
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(info, .init = setup, .fini = teardown, .timeout = 60);

static char *print(unsigned flags)
{
	static char buf[1 << 16];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	cr_assert_eq(mpops_info_print(r, f, flags), 0);
	fclose(f);
	return buf;
}

/* Balanced braces and brackets outside strings: a cheap JSON shape check. */
static int json_balanced(const char *s)
{
	int depth = 0, in_str = 0;

	for (; *s; s++) {
		if (in_str) {
			if (*s == '\\')
				s++;
			else if (*s == '"')
				in_str = 0;
			continue;
		}
		if (*s == '"')
			in_str = 1;
		else if (*s == '{' || *s == '[')
			depth++;
		else if (*s == '}' || *s == ']')
			depth--;
		if (depth < 0)
			return 0;
	}
	return depth == 0 && !in_str;
}

Test(info, text_names_ids_symbols_and_processes)
{
	char *t = print(0);
	char line[96];
	mpops_ops_id_t a;

	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_alpha, &a), 0);
	snprintf(line, sizeof(line), "id %3u  demo/alpha  table %p  demo_alpha_ops", a,
		 (const void *)&demo_alpha_ops);
	cr_assert(strstr(t, line), "missing '%s' in:\n%s", line, t);
	cr_assert(strstr(t, ".notify"), "%s", t);
	cr_assert(strstr(t, "demo_alpha_notify"), "%s", t);
	cr_assert(strstr(t, "int notify(struct demo_dev_shared *, demo_queue_t);"), "%s", t);
	cr_assert(strstr(t, "attached processes: 1"), "%s", t);
	cr_assert(strstr(t, "region 'info':"), "%s", t);
}

Test(info, json_is_one_object)
{
	char *j = print(MPOPS_INFO_F_JSON);

	cr_assert(json_balanced(j), "%s", j);
	cr_assert_eq(j[0], '{');
	cr_assert(strstr(j, "\"implementations\": [{\"id\": "), "%s", j);
	cr_assert(strstr(j, "\"name\": \"alpha\""), "%s", j);
	cr_assert(strstr(j, "\"symbol\": \"demo_alpha_notify\""), "%s", j);
	cr_assert(strstr(j, "\"processes\": [{\"pid\": "), "%s", j);
	cr_assert(strstr(j, "\"role\": \"primary\""), "%s", j);
	cr_assert_eq(mpops_info_print(r, NULL, 0), -EINVAL);
}

Test(info, tool_attaches_read_only_and_prints_the_region)
{
	const char *args[] = { "--json", "--runtime-dir", rundir_path(), "info", NULL };
	const char *none[] = { "--runtime-dir", rundir_path(), "nosuch", NULL };
	char pid[32];
	int st;

	st = peer_run("../app/mpops-info", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(json_balanced(out), "%s", out);
	snprintf(pid, sizeof(pid), "{\"pid\": %d", (int)getpid());
	cr_assert(strstr(out, pid), "%s", out);
	/* The tool registers no demo implementation: all three are foreign. */
	cr_assert(strstr(out, "\"unregistered\": [{\"id\": 1, \"class\": \"demo\", \"name\": \"alpha\""), "%s", out);
	/* Read-only: it did not enter the process table. */
	{
		struct mpops_proc_info p[4];
		cr_assert_eq(mpops_proc_list(r, p, 4), 1);
	}
	st = peer_run("../app/mpops-info", none, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	cr_assert(strstr(out, "no primary is running for region 'nosuch'"), "%s", out);
}

/* mpops-info registers no demo implementation and has no demo class: it
 * still shows the class from the name table, with the signature hash a
 * refused process's log line can be compared with. */
Test(info, tool_shows_classes_it_does_not_register_with_their_signature_hash)
{
	const char *text[] = { "--runtime-dir", rundir_path(), "info", NULL };
	const char *json[] = { "--json", "--runtime-dir", rundir_path(), "info", NULL };
	uint64_t h = ops_class_hash(&mpops_class_demo);
	char line[160];
	int st;

	st = peer_run("../app/mpops-info", text, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	snprintf(line, sizeof(line), "  demo             signature %#018" PRIx64 "  ops %zu bytes  (here: not registered)\n    IDs: 1 alpha, 2 beta, 3 gamma\n",
		 h, sizeof(struct demo_ops));
	cr_assert(strstr(out, line), "missing '%s' in:\n%s", line, out);
	st = peer_run("../app/mpops-info", json, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(json_balanced(out), "%s", out);
	snprintf(line, sizeof(line), "\"table_classes\": [{\"name\": \"demo\", \"signature_hash\": \"%#" PRIx64 "\", \"ops_size\": %zu, \"here\": \"absent\", \"implementations\": [{\"id\": 1, \"name\": \"alpha\"",
		 h, sizeof(struct demo_ops));
	cr_assert(strstr(out, line), "missing '%s' in:\n%s", line, out);
	snprintf(line, sizeof(line), "\"class\": \"demo\", \"name\": \"alpha\", \"signature_hash\": \"%#" PRIx64 "\"", h);
	cr_assert(strstr(out, line), "missing '%s' in:\n%s", line, out);
}

/* A process whose class differs from the table's sees both hashes. */
Test(info, a_class_whose_signature_differs_from_the_table_shows_both_hashes)
{
	struct ops_table_shared *t = (struct ops_table_shared *)ops_bound_table();
	uint64_t h = ops_class_hash(&mpops_class_demo);
	char line[160];
	char *txt;

	cr_assert_not_null(t);
	for (uint32_t id = 1; id < atomic_load(&t->count); id++)
		if (strcmp(t->e[id].cls, "demo") == 0)
			t->e[id].sig_hash = h ^ 1;
	txt = print(0);
	snprintf(line, sizeof(line), "  demo             signature %#018" PRIx64 "  ops %zu bytes  (here: signature %#" PRIx64 ", which differs)",
		 h ^ 1, sizeof(struct demo_ops), h);
	cr_assert(strstr(txt, line), "missing '%s' in:\n%s", line, txt);
	for (uint32_t id = 1; id < atomic_load(&t->count); id++)
		if (strcmp(t->e[id].cls, "demo") == 0)
			t->e[id].sig_hash = h;
	txt = print(0);
	cr_assert(strstr(txt, "(here: the same signature)\n    IDs: 1 alpha, 2 beta, 3 gamma\n"), "%s", txt);
}
