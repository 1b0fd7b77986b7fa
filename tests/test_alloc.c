/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"
#include "region_priv.h"

static struct mpops_region *r;

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("alloc");
	cr_assert_not_null(r);
}

static void teardown(void)
{
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(alloc, .init = setup, .fini = teardown, .timeout = 60);

Test(alloc, alignment_is_honoured_and_memory_zeroed)
{
	static const size_t aligns[] = { 0, 64, 128, 4096, 65536, 1 << 20 };
	void *base = mpops_region_base(r);
	mpops_off_t off;

	for (unsigned i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t a = aligns[i] ? aligns[i] : 64;
		uint8_t *p;

		cr_assert_eq(mpops_alloc(r, 1000, aligns[i], "aligned", &off), 0);
		cr_assert_eq(off % a, 0, "offset %#lx not aligned to %zu", (unsigned long)off, a);
		p = mpops_ptr(base, off);
		for (int k = 0; k < 1000; k++)
			cr_assert_eq(p[k], 0);
		memset(p, 0xab, 1000);
	}
}

Test(alloc, free_coalesces_back_to_one_block)
{
	struct mpops_alloc_stats before, st;
	mpops_off_t off[16];

	cr_assert_eq(mpops_alloc_stats(r, &before), 0);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(mpops_alloc(r, 100 + i * 300, i % 3 ? 0 : 4096, "blk", &off[i]), 0);
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.objects, before.objects + 16);
	/* Free in an interleaved order so both coalescing directions run. */
	for (int i = 0; i < 16; i += 2)
		cr_assert_eq(mpops_free(r, off[i]), 0);
	for (int i = 1; i < 16; i += 2)
		cr_assert_eq(mpops_free(r, off[i]), 0);
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.objects, before.objects);
	cr_assert_eq(st.bytes_used, before.bytes_used);
	cr_assert_eq(st.free_blocks, before.free_blocks);
}

Test(alloc, exhaustion_is_enomem_and_recovers)
{
	mpops_off_t offs[64];
	int n = 0, rc;

	while ((rc = mpops_alloc(r, 1 << 20, 0, "big", &offs[n])) == 0 && n < 63)
		n++;
	cr_assert_eq(rc, -ENOMEM);
	cr_assert_gt(n, 8);
	cr_assert_eq(logcap_count("is out of memory for 1048576 bytes (tag 'big')"), 1);
	for (int i = 0; i < n; i++)
		cr_assert_eq(mpops_free(r, offs[i]), 0);
	cr_assert_eq(mpops_alloc(r, 1 << 20, 0, "big", &offs[0]), 0);
}

Test(alloc, double_free_and_bad_offsets_are_einval)
{
	mpops_off_t off;

	cr_assert_eq(mpops_alloc(r, 256, 0, "once", &off), 0);
	cr_assert_eq(mpops_free(r, off), 0);
	cr_assert_eq(mpops_free(r, off), -EINVAL);
	cr_assert_eq(mpops_free(r, off + 8), -EINVAL);
	cr_assert_eq(mpops_free(r, 0), -EINVAL);
	cr_assert_eq(mpops_free(r, (mpops_off_t)1 << 40), -EINVAL);
	cr_assert_eq(logcap_count("not an allocated object"), 4);
}

Test(alloc, bad_sizes_are_einval)
{
	mpops_off_t off;

	cr_assert_eq(mpops_alloc(r, 0, 0, "zero", &off), -EINVAL);
	cr_assert_eq(mpops_alloc(r, 64, 3, "odd", &off), -EINVAL);
	cr_assert_eq(mpops_alloc(r, (size_t)1 << 40, 0, "huge", &off), -EINVAL);
}

Test(alloc, find_names_the_containing_object)
{
	mpops_off_t off, start;
	size_t size;
	char tag[32];

	cr_assert_eq(mpops_alloc(r, 500, 0, "port0.rxq", &off), 0);
	cr_assert_eq(mpops_alloc_find(r, off + 123, &start, &size, tag), 0);
	cr_assert_eq(start, off);
	cr_assert_eq(size, 500);
	cr_assert_str_eq(tag, "port0.rxq");
	cr_assert_eq(mpops_free(r, off), 0);
	cr_assert_eq(mpops_alloc_find(r, off + 123, &start, &size, tag), -ENOENT);
}

Test(alloc, concurrent_processes_allocate_and_free_safely)
{
	const char *args[] = { "allocstress", rundir_path(), "alloc", "300", NULL };
	struct mpops_alloc_stats before, after;
	char buf[2][4096];
	int fd[2], st;
	pid_t pid[2];

	cr_assert_eq(mpops_alloc_stats(r, &before), 0);
	for (int i = 0; i < 2; i++) {
		pid[i] = peer_start("mp-secondary", args, &fd[i]);
		cr_assert_gt(pid[i], 0);
	}
	/* This process joins in. */
	for (int k = 0; k < 300; k++) {
		mpops_off_t off;

		cr_assert_eq(mpops_alloc(r, 100 + (size_t)k, 128, "mine", &off), 0);
		cr_assert_eq(off % 128, 0);
		cr_assert_eq(mpops_free(r, off), 0);
	}
	for (int i = 0; i < 2; i++) {
		buf[i][0] = '\0';
		st = peer_finish(pid[i], fd[i], buf[i], sizeof(buf[i]), 60000);
		cr_assert(EXITED_OK(st), "%s", buf[i]);
		cr_assert(strstr(buf[i], "stress bad=0"), "%s", buf[i]);
	}
	cr_assert_eq(mpops_alloc_stats(r, &after), 0);
	cr_assert_eq(after.objects, before.objects);
	cr_assert_eq(after.bytes_used, before.bytes_used);
	cr_assert_eq(after.free_blocks, before.free_blocks);
}

/* ---- a process killed inside the allocator ----------------------------- */

/* crash-peer attaches and dies by SIGKILL at @point inside "@cmd @arg". */
static void peer_dies_at(const char *point, const char *cmd, const char *arg)
{
	const char *args[] = { rundir_path(), "alloc", point, cmd, arg, NULL };
	char out[4096];
	int st = peer_run("crash-peer", args, out, sizeof(out));

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x: %s", st, out);
	cr_assert(strstr(out, "dying at"), "%s", out);
}

static void offset_arg(char *buf, size_t len, mpops_off_t off)
{
	snprintf(buf, len, "%#llx", (unsigned long long)off);
}

/* Everything this test allocated is freed: the heap is what it was. */
static void heap_is_back(const struct mpops_alloc_stats *before, mpops_off_t *offs, int n)
{
	struct mpops_alloc_stats st;
	mpops_off_t more[32];

	/* Usable: a round of allocations of every size and alignment. */
	for (int i = 0; i < 32; i++)
		cr_assert_eq(mpops_alloc(r, 64 + (size_t)i * 700, i % 4 ? 0 : 4096, "after",
					 &more[i]), 0);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(mpops_free(r, more[i]), 0);
	for (int i = 0; i < n; i++)
		if (offs[i])
			cr_assert_eq(mpops_free(r, offs[i]), 0);
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.objects, before->objects);
	cr_assert_eq(st.bytes_used, before->bytes_used);
	cr_assert_eq(st.free_blocks, before->free_blocks);
}

Test(alloc, a_process_killed_inside_alloc_leaves_a_usable_heap)
{
	static const char *points[] = { "alloc.unlinked", "alloc.split" };

	for (unsigned k = 0; k < 2; k++) {
		struct mpops_alloc_stats before, st;
		mpops_off_t off[2];

		cr_assert_eq(mpops_alloc_stats(r, &before), 0);
		/* A hole before the next free block, so the peer's 4096-aligned
		 * request splits off a gap as well. */
		cr_assert_eq(mpops_alloc(r, 3000, 0, "a", &off[0]), 0);
		cr_assert_eq(mpops_alloc(r, 3000, 0, "b", &off[1]), 0);
		cr_assert_eq(mpops_free(r, off[0]), 0);
		off[0] = 0;
		peer_dies_at(points[k], "alloc", "70000");
		/* The dead call is undone: no object more, the same free blocks. */
		cr_assert_eq(mpops_alloc_stats(r, &st), 0);
		cr_assert_eq(st.objects, before.objects + 1);
		heap_is_back(&before, off, 2);
		cr_assert_eq(logcap_count("was undone"), (int)k + 1);
	}
	cr_assert_eq(logcap_count("a process died holding the lock of the region's allocator: repaired"), 2);
}

Test(alloc, a_process_killed_inside_free_leaves_a_usable_heap)
{
	static const char *points[] = { "free.merged_next", "free.pushed" };

	for (unsigned k = 0; k < 2; k++) {
		struct mpops_alloc_stats before, st;
		mpops_off_t off[4];
		char arg[32];

		cr_assert_eq(mpops_alloc_stats(r, &before), 0);
		for (int i = 0; i < 4; i++)
			cr_assert_eq(mpops_alloc(r, 1000, 0, "q", &off[i]), 0);
		/* Free neighbours on both sides of the one the peer frees. */
		cr_assert_eq(mpops_free(r, off[0]), 0);
		cr_assert_eq(mpops_free(r, off[2]), 0);
		off[0] = off[2] = 0;
		offset_arg(arg, sizeof(arg), off[1]);
		peer_dies_at(points[k], "free", arg);
		/* Undone: the object is still there, and frees here. */
		cr_assert_eq(mpops_alloc_stats(r, &st), 0);
		cr_assert_eq(st.objects, before.objects + 2);
		heap_is_back(&before, off, 4);
	}
	cr_assert_eq(logcap_count("was undone"), 2);
}

Test(alloc, an_allocator_that_cannot_be_repaired_refuses_every_call)
{
	struct alloc_undo_shared *u = &((struct region_hdr_shared *)mpops_region_base(r))->alloc.undo;
	struct mpops_alloc_stats st;
	mpops_off_t off;

	peer_dies_at("alloc.split", "alloc", "5000");
	/* What the dead call saved is no longer true (as if overwritten). */
	u->e[0].off = 8;
	cr_assert_eq(mpops_alloc(r, 100, 0, "x", &off), -ENOTRECOVERABLE);
	cr_assert_eq(logcap_count("cannot be repaired"), 1);
	cr_assert_eq(mpops_alloc(r, 100, 0, "x", &off), -ENOTRECOVERABLE);
	cr_assert_eq(mpops_free(r, 4096), -ENOTRECOVERABLE);
	cr_assert_eq(mpops_alloc_stats(r, &st), -ENOTRECOVERABLE);
	cr_assert_eq(logcap_count("the region's allocator is not usable"), 3);
}
