/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
	struct mpops_alloc_stats st;
	mpops_off_t offs[64];
	char line[64];
	int n = 0, rc;

	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	while ((rc = mpops_alloc(r, 1 << 20, 0, "big", &offs[n])) == 0 && n < 63)
		n++;
	cr_assert_eq(rc, -ENOMEM);
	/* 16 MiB: a host part of 4 MiB, the tables in it. */
	cr_assert_geq(n, 2);
	snprintf(line, sizeof(line), "the host part (%llu bytes,",
		 (unsigned long long)st.bytes_total);
	cr_assert_eq(logcap_count(line), 1);
	cr_assert_eq(logcap_count("has no room for 1048576 bytes (tag 'big')"), 1);
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

/* ---- the device part ---------------------------------------------------- */

Test(alloc, the_region_is_a_host_part_and_a_device_part)
{
	struct mpops_region_dev d;
	struct mpops_alloc_stats st;
	struct stat fs;

	cr_assert_eq(mpops_region_dev(r, &d), 0);
	/* 16 MiB by default: three quarters for the device. */
	cr_assert_eq(mpops_region_size(r), 16u << 20);
	cr_assert_eq(d.off, 4u << 20);
	cr_assert_eq(d.size, 12u << 20);
	cr_assert_eq(d.addr, (char *)mpops_region_base(r) + d.off);
	cr_assert_eq(fstat(d.fd, &fs), 0);
	cr_assert_eq((uint64_t)fs.st_size, d.size);
	cr_assert_eq(fstat(mpops_region_fd(r), &fs), 0);
	cr_assert_eq((uint64_t)fs.st_size, d.off);
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.dev_bytes_total, d.size);
	cr_assert_eq(st.dev_bytes_used, 0);
	cr_assert_lt(st.bytes_total, d.off);
	cr_assert_eq(mpops_region_dev(NULL, &d), -EINVAL);
}

Test(alloc, device_allocations_are_aligned_zeroed_found_and_merge_back)
{
	static const size_t aligns[] = { 0, 64, 4096, 65536, 1 << 20 };
	struct mpops_alloc_stats st;
	struct mpops_region_dev d;
	mpops_off_t off[5], start;
	size_t size;
	char tag[MPOPS_NAME_MAX + 1];

	mpops_region_dev(r, &d);
	for (unsigned i = 0; i < 5; i++) {
		size_t a = aligns[i] ? aligns[i] : 64;
		uint8_t *p;

		cr_assert_eq(mpops_alloc_dev(r, 3000, aligns[i], "dv", &off[i]), 0);
		cr_assert_eq(off[i] % a, 0);
		cr_assert_geq(off[i], d.off);
		cr_assert_leq(off[i] + 3000, d.off + d.size);
		p = mpops_ptr(mpops_region_base(r), off[i]);
		for (int k = 0; k < 3000; k++)
			cr_assert_eq(p[k], 0);
		/* What a device writes is not there for the next owner. */
		memset(p, 0xee, 3000);
	}
	cr_assert_eq(mpops_alloc_find(r, off[2] + 100, &start, &size, tag), 0);
	cr_assert_eq(start, off[2]);
	cr_assert_eq(size, 3008);	/* rounded to 64 */
	cr_assert_str_eq(tag, "dv");
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.dev_objects, 5);
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(mpops_free(r, off[(i * 3) % 5]), 0);
	cr_assert_eq(mpops_alloc_stats(r, &st), 0);
	cr_assert_eq(st.dev_objects, 0);
	cr_assert_eq(st.dev_bytes_used, 0);
	/* Merged back into one extent: the whole part fits one object. */
	cr_assert_eq(mpops_alloc_dev(r, d.size, 0, "all", &off[0]), 0);
	cr_assert_eq(off[0], d.off);
	cr_assert_eq(((uint8_t *)mpops_region_base(r))[off[2]], 0);
	cr_assert_eq(mpops_free(r, off[0]), 0);
	cr_assert_eq(mpops_free(r, off[0]), -EINVAL);
	cr_assert_eq(mpops_free(r, d.off + 64), -EINVAL);
	cr_assert_eq(logcap_count("not an allocated object of the device part"), 2);
	cr_assert_eq(mpops_alloc_find(r, d.off + 64, &start, &size, tag), -ENOENT);
}

Test(alloc, a_full_device_part_and_a_full_table_say_so)
{
	struct mpops_region_dev d;
	mpops_off_t off[300];
	int n = 0, rc;

	mpops_region_dev(r, &d);
	cr_assert_eq(mpops_alloc_dev(r, d.size + 1, 0, "big", &off[0]), -EINVAL);
	cr_assert_eq(mpops_alloc_dev(r, d.size / 2 + 4096, 0, "half", &off[0]), 0);
	cr_assert_eq(mpops_alloc_dev(r, d.size / 2, 0, "half", &off[1]), -ENOMEM);
	cr_assert_eq(logcap_count("the device part ("), 1);
	cr_assert_eq(logcap_count("create the region with a larger dev_size"), 1);
	cr_assert_eq(mpops_free(r, off[0]), 0);
	/* Small objects, each an extent of the table, until it is full. */
	while ((rc = mpops_alloc_dev(r, 64, 0, "tiny", &off[n])) == 0 && n < 299)
		n++;
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_eq(n, 255);	/* 256 extents: the last one is the free rest */
	cr_assert_eq(logcap_count("the device part's table is full (256 extents)"), 1);
	for (int i = 0; i < n; i += 2)
		cr_assert_eq(mpops_free(r, off[i]), 0);
	for (int i = 1; i < n; i += 2)
		cr_assert_eq(mpops_free(r, off[i]), 0);
	cr_assert_eq(mpops_alloc_dev(r, d.size, 0, "all", &off[0]), 0);
	cr_assert_eq(mpops_free(r, off[0]), 0);
}

Test(alloc, a_process_killed_inside_alloc_dev_leaves_a_usable_table)
{
	static const char *points[] = { "devalloc.saved", "devalloc.split" };
	struct mpops_region_dev d;

	mpops_region_dev(r, &d);
	for (unsigned k = 0; k < 2; k++) {
		struct mpops_alloc_stats before, st;
		mpops_off_t off;

		cr_assert_eq(mpops_alloc_dev(r, 100, 0, "first", &off), 0);
		cr_assert_eq(mpops_alloc_stats(r, &before), 0);
		peer_dies_at(points[k], "devalloc", "70000");
		/* Undone: no object more, and the whole rest still fits. */
		cr_assert_eq(mpops_alloc_stats(r, &st), 0);
		cr_assert_eq(st.dev_objects, before.dev_objects);
		cr_assert_eq(st.dev_bytes_used, before.dev_bytes_used);
		cr_assert_eq(mpops_free(r, off), 0);
		cr_assert_eq(mpops_alloc_dev(r, d.size, 0, "all", &off), 0);
		cr_assert_eq(mpops_free(r, off), 0);
		cr_assert_eq(logcap_count("device-part allocator call of a process that died inside was undone"),
			     (int)k + 1);
	}
	cr_assert_eq(logcap_count("a process died holding the lock of the region's device-part allocator: repaired"), 2);
}

Test(alloc, a_device_table_that_cannot_be_repaired_refuses_every_call)
{
	struct region_hdr_shared *h = mpops_region_base(r);
	struct devheap_shared *dh = mpops_ptr(mpops_region_base(r), h->devheap_off);
	struct mpops_alloc_stats st;
	mpops_off_t off;

	peer_dies_at("devalloc.split", "devalloc", "5000");
	/* What the dead call saved is no longer true (as if overwritten). */
	dh->undo.e[0].size = 64;
	cr_assert_eq(mpops_alloc_dev(r, 100, 0, "x", &off), -ENOTRECOVERABLE);
	cr_assert_eq(logcap_count("the device part's allocator table is not sound"), 1);
	cr_assert_eq(mpops_alloc_dev(r, 100, 0, "x", &off), -ENOTRECOVERABLE);
	cr_assert_eq(mpops_alloc_stats(r, &st), -ENOTRECOVERABLE);
	/* The host part's allocator is another lock: it goes on. */
	cr_assert_eq(mpops_alloc(r, 100, 0, "x", &off), 0);
}
