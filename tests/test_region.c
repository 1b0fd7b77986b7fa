/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"
#include "region_priv.h"

static char out[1 << 15];

static void setup(void)
{
	logcap_start();
	rundir_make();
}

static void teardown(void)
{
	rundir_remove();
}

TestSuite(region, .init = setup, .fini = teardown, .timeout = 60);

static const char *const *peer_args(const char *cmd, const char *name)
{
	static const char *a[4];

	a[0] = cmd;
	a[1] = rundir_path();
	a[2] = name;
	a[3] = NULL;
	return a;
}

Test(region, create_maps_header_and_socket)
{
	struct mpops_region *r = primary_make("basic");
	struct region_hdr_shared *h;
	char path[256];
	struct stat st;

	cr_assert_not_null(r);
	h = mpops_region_base(r);
	cr_assert_eq(h->magic, REGION_MAGIC);
	cr_assert_eq(h->abi_version, MPOPS_ABI_VERSION);
	cr_assert_eq(h->layout_hash, region_layout_hash());
	cr_assert_eq(h->primary_pid, getpid());
	cr_assert_eq(h->size, mpops_region_size(r));
	cr_assert_eq(mpops_region_size(r), 16u << 20);
	cr_assert_eq(mpops_region_role(r), MPOPS_ROLE_PRIMARY);
	cr_assert_str_eq(mpops_region_name(r), "basic");
	cr_assert_gt(h->primary_build_id_len, 0);
	snprintf(path, sizeof(path), "%s/basic.sock", rundir_path());
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(mpops_region_detach(r), 0);
	/* Detach removes the socket and lock file. */
	cr_assert_eq(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/basic.lock", rundir_path());
	cr_assert_eq(stat(path, &st), -1);
}

Test(region, bad_names_are_einval)
{
	struct mpops_region *r = (void *)1;

	cr_assert_eq(mpops_region_create("", NULL, &r), -EINVAL);
	cr_assert_null(r);
	cr_assert_eq(mpops_region_create("a/b", NULL, &r), -EINVAL);
	cr_assert_eq(mpops_region_create(".hidden", NULL, &r), -EINVAL);
	cr_assert_eq(mpops_region_create("0123456789012345678901234567890123", NULL, &r), -EINVAL);
	cr_assert_eq(logcap_count("has character '/'"), 1);
	cr_assert_eq(logcap_count("is longer than 31 characters"), 1);
}

Test(region, bad_opts_size_is_einval)
{
	struct mpops_region_opts o = { .sz = 0 };
	struct mpops_region *r;

	cr_assert_eq(mpops_region_create("opts", &o, &r), -EINVAL);
	cr_assert_eq(logcap_count("mpops_region_opts.sz must be"), 1);
}

Test(region, second_primary_is_ebusy_naming_the_holder)
{
	struct mpops_region *r = primary_make("dup"), *r2 = NULL;
	char line[96];

	cr_assert_not_null(r);
	cr_assert_null(primary_make("dup"));
	{
		struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir_path() };
		cr_assert_eq(mpops_region_create("dup", &o, &r2), -EBUSY);
	}
	snprintf(line, sizeof(line), "region 'dup' already has a primary (pid %d)", (int)getpid());
	cr_assert_eq(logcap_count(line), 2);
	mpops_region_detach(r);
	/* Once the primary detached, the name is free again. */
	r = primary_make("dup");
	cr_assert_not_null(r);
	mpops_region_detach(r);
}

Test(region, attach_without_primary_is_enoent)
{
	int st = peer_run("mp-secondary", peer_args("attach", "nobody-home"), out, sizeof(out));
	char line[32];

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	snprintf(line, sizeof(line), "attach=%d", -ENOENT);
	cr_assert(strstr(out, line), "%s", out);
	cr_assert(strstr(out, "no primary is running for region 'nobody-home'"), "%s", out);
	cr_assert(strstr(out, "start the primary first"), "%s", out);
}

Test(region, stale_socket_without_primary_is_enoent)
{
	struct mpops_region *r = primary_make("stale");
	char path[256], line[32];
	int st;

	cr_assert_not_null(r);
	/* A socket file left by a primary that is gone: bind a fresh one, no listener. */
	mpops_region_detach(r);
	snprintf(path, sizeof(path), "%s/stale.sock", rundir_path());
	cr_assert_eq(mknod(path, S_IFSOCK | 0600, 0), 0);
	st = peer_run("mp-secondary", peer_args("attach", "stale"), out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	snprintf(line, sizeof(line), "attach=%d", -ENOENT);
	cr_assert(strstr(out, line), "%s", out);
}

Test(region, secondary_maps_elsewhere_and_reads_by_offset)
{
	struct mpops_region *r = primary_make("opsmp");
	int st;

	cr_assert_not_null(r);
	st = peer_run("mp-secondary", peer_args("attach", "opsmp"), out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "attach=0"), "%s", out);
	mpops_region_detach(r);
}

Test(region, abi_mismatch_in_header_is_eproto)
{
	struct mpops_region *r = primary_make("abi");
	struct region_hdr_shared *h;
	char line[48];
	int st;

	cr_assert_not_null(r);
	h = mpops_region_base(r);
	h->abi_version = MPOPS_ABI_VERSION + 1;	/* as a newer primary would write */
	st = peer_run("mp-secondary", peer_args("attach", "abi"), out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	snprintf(line, sizeof(line), "attach=%d", -EPROTO);
	cr_assert(strstr(out, line), "%s", out);
	snprintf(line, sizeof(line), "the primary's region has ABI %d,", MPOPS_ABI_VERSION + 1);
	cr_assert(strstr(out, line), "%s", out);
	cr_assert(strstr(out, "rebuild both from the same mpops version"), "%s", out);
	h->abi_version = MPOPS_ABI_VERSION;
	mpops_region_detach(r);
}

Test(region, layout_mismatch_in_handshake_is_eproto)
{
	struct mpops_region *r = primary_make("layout");
	struct region_hdr_shared *h;
	char line[48];
	int st;

	cr_assert_not_null(r);
	h = mpops_region_base(r);
	h->layout_hash ^= 1;	/* a primary built with other shared layouts */
	st = peer_run("mp-secondary", peer_args("attach", "layout"), out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
	snprintf(line, sizeof(line), "attach=%d", -EPROTO);
	cr_assert(strstr(out, line), "%s", out);
	snprintf(line, sizeof(line), "this process was built with ABI %d, layout", MPOPS_ABI_VERSION);
	cr_assert(strstr(out, line), "%s", out);
	/* The primary says it too, naming the refused pid. */
	cr_assert_eq(logcap_count("refused pid"), 1);
	h->layout_hash ^= 1;
	mpops_region_detach(r);
}

Test(region, readonly_attach_cannot_write)
{
	struct mpops_region *r = primary_make("ro");
	mpops_off_t off;
	int st;

	cr_assert_not_null(r);
	cr_assert_eq(mpops_alloc(r, 128, 0, "demo.devs", &off), 0);
	cr_assert_eq(mpops_root_set(r, "devs", off), 0);
	st = peer_run("mp-secondary", peer_args("readonly", "ro"), out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "needs a writable attach"), "%s", out);
	mpops_region_detach(r);
}

Test(region, offsets_convert_both_ways_and_are_checked)
{
	struct mpops_region *r = primary_make("off");
	void *base, *p;
	mpops_off_t off;

	cr_assert_not_null(r);
	base = mpops_region_base(r);
	cr_assert_eq(mpops_alloc(r, 256, 0, "x", &off), 0);
	p = mpops_ptr(base, off);
	cr_assert_eq(mpops_off(base, p), off);
	cr_assert_null(mpops_ptr(base, MPOPS_OFF_NULL));
	cr_assert_eq(mpops_off(base, NULL), MPOPS_OFF_NULL);
	cr_assert_eq(MPOPS_PTR(base, off, struct demo_dev_shared), (struct demo_dev_shared *)p);
	cr_assert_eq(mpops_region_ptr(r, off, 256, &p), 0);
	cr_assert_eq(p, (char *)base + off);
	cr_assert_eq(mpops_region_ptr(r, 8, 8, &p), -ERANGE);		/* the header */
	cr_assert_eq(mpops_region_ptr(r, mpops_region_size(r) - 8, 16, &p), -ERANGE);
	cr_assert_eq(mpops_region_ptr(r, UINT64_MAX - 4, 16, &p), -ERANGE);
	cr_assert_eq(logcap_count("is outside the region's objects"), 3);
	mpops_region_detach(r);
}

Test(region, roots_publish_and_find)
{
	struct mpops_region *r = primary_make("roots");
	char name[16];
	mpops_off_t off, got;

	cr_assert_not_null(r);
	cr_assert_eq(mpops_alloc(r, 64, 0, "port", &off), 0);
	cr_assert_eq(mpops_root_set(r, "port0", off), 0);
	cr_assert_eq(mpops_root_get(r, "port0", &got), 0);
	cr_assert_eq(got, off);
	cr_assert_eq(mpops_root_set(r, "port0", off), -EEXIST);
	cr_assert_eq(mpops_root_get(r, "port1", &got), -ENOENT);
	cr_assert_eq(mpops_root_del(r, "port0"), 0);
	cr_assert_eq(mpops_root_del(r, "port0"), -ENOENT);
	for (int i = 0; i < MPOPS_ROOTS_MAX; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		cr_assert_eq(mpops_root_set(r, name, off), 0);
	}
	cr_assert_eq(mpops_root_set(r, "one-more", off), -ENOSPC);
	cr_assert_eq(logcap_count("roots are taken"), 1);
	mpops_region_detach(r);
}

Test(region, a_process_killed_publishing_a_root_leaves_a_free_root)
{
	struct mpops_region *r = primary_make("rootdie");
	const char *args[] = { rundir_path(), "rootdie", "roots.named", "root", "half", NULL };
	mpops_off_t off, got;
	int st;

	cr_assert_not_null(r);
	st = peer_run("crash-peer", args, out, sizeof(out));
	cr_assert(WIFSIGNALED(st), "%s", out);
	cr_assert(strstr(out, "dying at roots.named"), "%s", out);
	/* The name was written, the offset not: the root is free. */
	cr_assert_eq(mpops_root_get(r, "half", &got), -ENOENT);
	cr_assert_eq(mpops_alloc(r, 64, 0, "x", &off), 0);
	cr_assert_eq(mpops_root_set(r, "half", off), 0);
	cr_assert_eq(mpops_root_get(r, "half", &got), 0);
	cr_assert_eq(got, off);
	cr_assert_eq(logcap_count("a process died holding the lock of the region's named roots: nothing half done, taken over"), 1);
	mpops_region_detach(r);
}

Test(region, runtime_dir_resolution)
{
	char buf[128];

	cr_assert_gt(mpops_runtime_dir("/x/y", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/x/y");
	setenv("MPOPS_RUNTIME_DIR", "/from/env", 1);
	mpops_runtime_dir(NULL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "/from/env");
	unsetenv("MPOPS_RUNTIME_DIR");
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	mpops_runtime_dir(NULL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "/run/user/7/mpops");
	unsetenv("XDG_RUNTIME_DIR");
	mpops_runtime_dir(NULL, buf, sizeof(buf));
	cr_assert_str_eq(buf, geteuid() == 0 ? "/run/mpops" : buf);
	cr_assert_eq(mpops_runtime_dir(NULL, buf, 4), -ENAMETOOLONG);
}

Test(region, unwritable_runtime_dir_is_eacces)
{
	char dir[160];
	pid_t pid;
	int st;

	/* A directory only root may write, tried as an unprivileged user. */
	snprintf(dir, sizeof(dir), "%s/locked", rundir_path());
	cr_assert_eq(mkdir(dir, 0755), 0);
	chmod(rundir_path(), 0755);
	pid = fork();
	if (pid == 0) {
		struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = dir };
		struct mpops_region *r;
		int rc;

		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		rc = mpops_region_create("locked", &o, &r);
		_exit(rc == -EACCES && logcap_count("permission denied") == 1 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	cr_assert(EXITED_OK(st), "status %#x", st);
}

Test(region, hugetlbfs_not_mounted_is_enodev)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(),
		.backing = MPOPS_BACKING_HUGETLBFS, .hugetlbfs_dir = rundir_path(),
	};
	struct mpops_region *r;

	cr_assert_eq(mpops_region_create("huge", &o, &r), -ENODEV);
	cr_assert_eq(logcap_count("is not a mounted hugetlbfs"), 1);
}

Test(region, hugetlb_memfd_without_free_pages_is_enomem)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(),
		.backing = MPOPS_BACKING_MEMFD_HUGETLB,
		.size = (size_t)64 << 30,	/* more than any test machine reserves */
	};
	struct mpops_region *r;
	int rc = mpops_region_create("hugemfd", &o, &r);

	cr_assert(rc == -ENOMEM || rc == -EINVAL, "rc %d", rc);
	cr_assert_eq(logcap_count("region 'hugemfd'"), 1);
}

Test(region, numa_placement)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(),
		.flags = MPOPS_REGION_F_NUMA, .numa_node = 0,
	};
	struct mpops_region *r;

	cr_assert_eq(mpops_region_create("numa0", &o, &r), 0);
	mpops_region_detach(r);
	o.numa_node = 4095;
	if (numa_available() < 0) {
		/* No NUMA here: placement is skipped with a logged line. */
		cr_assert_eq(mpops_region_create("numa1", &o, &r), 0);
		cr_assert_eq(logcap_count("NUMA is not available"), 2);
		mpops_region_detach(r);
	} else {
		cr_assert_eq(mpops_region_create("numa1", &o, &r), -ENODEV);
		cr_assert_eq(logcap_count("NUMA node 4095 does not exist"), 1);
	}
}

Test(region, one_region_per_process)
{
	struct mpops_region *r = primary_make("first");
	struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir_path() };
	struct mpops_region *r2;

	cr_assert_not_null(r);
	cr_assert_eq(mpops_region_create("second", &o, &r2), -EBUSY);
	cr_assert_eq(logcap_count("already bound to another ops name table"), 1);
	mpops_region_detach(r);
	cr_assert_eq(mpops_region_create("second", &o, &r2), 0);
	mpops_region_detach(r2);
}

Test(region, hugetlb_memfd_region_is_shared_with_a_secondary)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(),
		.backing = MPOPS_BACKING_MEMFD_HUGETLB, .size = 8u << 20,
	};
	struct mpops_region *r = NULL;
	long got = huge_take(8);
	int rc, st;

	if (got < 0)
		cr_skip_test("cannot reserve hugepages here (not root?)");
	rc = mpops_region_create("hugeok", &o, &r);
	if (rc == -ENOMEM) {
		huge_give(got);
		cr_skip_test("the kernel found no free 2 MiB pages");
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(mpops_region_size(r), 8u << 20);
	st = peer_run("mp-secondary", peer_args("attach", "hugeok"), out, sizeof(out));
	mpops_region_detach(r);
	huge_give(got);
	cr_assert(EXITED_OK(st), "%s", out);
}

Test(region, device_addresses_default_to_the_offset)
{
	struct mpops_region_opts o = { .sz = sizeof(o), .runtime_dir = rundir_path() };
	struct mpops_region *r = NULL;
	struct mpops_region_dev d;
	uint64_t iova = 1;

	cr_assert_eq(mpops_region_create("iovaoff", &o, &r), 0);
	cr_assert_eq(mpops_region_iova_mode(r), MPOPS_IOVA_OFF);
	cr_assert_eq(mpops_region_page_size(r), (size_t)sysconf(_SC_PAGESIZE));
	cr_assert_eq(mpops_region_dev(r, &d), 0);
	cr_assert_eq(mpops_region_iova(r, d.off + 0x12345, 100, &iova), 0);
	cr_assert_eq(iova, d.off + 0x12345);
	/* The host part has no device address. */
	cr_assert_eq(mpops_region_iova(r, 0x12345, 100, &iova), -ERANGE);
	cr_assert_eq(mpops_region_iova(r, d.off - 10, 11, &iova), -ERANGE);
	cr_assert_eq(mpops_region_iova(r, mpops_region_size(r), 1, &iova), -ERANGE);
	cr_assert_eq(mpops_region_iova(r, mpops_region_size(r) - 10, 11, &iova), -ERANGE);
	mpops_region_detach(r);
}

Test(region, physical_addresses_need_hugepages)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .flags = MPOPS_REGION_F_PHYS,
	};
	struct mpops_region *r = NULL;

	cr_assert_eq(mpops_region_create("physsmall", &o, &r), -EINVAL);
	cr_assert_null(r);
	cr_assert_eq(logcap_count("need hugepage memory"), 1);
}

/* The physical address of the page at @va, read here independently. */
static uint64_t test_pa(const void *va)
{
	uint64_t ent = 0, page = (uint64_t)sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/pagemap", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, (long)((uintptr_t)va / page * 8), SEEK_SET), 0);
	cr_assert_eq(fread(&ent, 8, 1, f), 1);
	fclose(f);
	return (ent & ((1ULL << 55) - 1)) * page + (uintptr_t)va % page;
}

Test(region, physical_addresses_of_hugepages_and_of_pool_buffers)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .size = 8u << 20,
		.backing = MPOPS_BACKING_MEMFD_HUGETLB, .flags = MPOPS_REGION_F_PHYS,
	};
	struct mpops_pktpool_opts po = { .sz = sizeof(po), .count = 2048, .cache_size = 1 };
	const size_t huge = 2u << 20;
	struct mpops_region_dev d;
	struct mpops_region *r = NULL;
	struct mpops_pktpool *pool;
	struct mpops_pkt *m;
	mpops_off_t pool_off;
	uint64_t iova, pa[3];
	unsigned straddle = 0, seen = 0, gaps = 0;
	long got = huge_take(4);
	int rc;

	if (got < 0)
		cr_skip_test("cannot reserve hugepages here (not root?)");
	rc = mpops_region_create("phys", &o, &r);
	if (rc == -ENOMEM) {
		huge_give(got);
		cr_skip_test("the kernel found no free 2 MiB pages");
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(mpops_region_iova_mode(r), MPOPS_IOVA_PA);
	cr_assert_eq(mpops_region_page_size(r), huge);
	/* 8 MiB: 2 for the host part, 3 pages of device part. */
	cr_assert_eq(mpops_region_dev(r, &d), 0);
	cr_assert_eq(d.off, huge);
	cr_assert_eq(d.size, 3 * huge);
	for (int i = 0; i < 3; i++) {
		pa[i] = test_pa((char *)mpops_region_base(r) + d.off + i * huge);
		cr_assert_neq(pa[i], 0);
		cr_assert_eq(mpops_region_iova(r, d.off + i * huge + 0x1234, 64, &iova), 0);
		cr_assert_eq(iova, pa[i] + 0x1234, "page %d: %#llx, pagemap says %#llx", i,
			     (unsigned long long)iova, (unsigned long long)pa[i] + 0x1234);
	}
	cr_assert_eq(mpops_region_iova(r, 0x1234, 64, &iova), -ERANGE);
	/* Across a page boundary only when the two pages are adjacent. */
	rc = mpops_region_iova(r, d.off + huge - 8, 16, &iova);
	cr_assert_eq(rc, pa[1] == pa[0] + huge ? 0 : -EFAULT);

	/* A pool: every buffer's device address, and the ones left out. */
	cr_assert_eq(mpops_pktpool_create(r, "physpool", &po, &pool_off), 0);
	cr_assert_eq(mpops_pktpool_open(r, pool_off, &pool), 0);
	while ((m = mpops_pkt_alloc(pool))) {
		char *buf = mpops_ptr(mpops_region_base(r), m->buf_off);

		cr_assert_eq(m->buf_iova, test_pa(buf));
		cr_assert_eq(test_pa(buf + m->buf_len - 1), m->buf_iova + m->buf_len - 1,
			     "buffer %u is not in one piece", m->index);
		seen++;
	}
	/* Each boundary between pages that are not adjacent costs at most one
	 * buffer; adjacent ones cost none. */
	straddle = po.count - seen;
	for (int i = 1; i < 3; i++)
		gaps += pa[i] != pa[i - 1] + huge;
	cr_assert_leq(straddle, gaps, "%u buffers left out, %u gaps between pages", straddle, gaps);
	cr_assert_eq(logcap_count("span two hugepages"), straddle ? 1 : 0);
	mpops_pktpool_close(pool);
	mpops_region_detach(r);
	huge_give(got);
}

Test(region, the_device_part_is_sized_as_asked_and_a_part_too_small_is_einval)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .size = 8u << 20, .dev_size = 5u << 20,
	};
	struct mpops_region *r = NULL;
	struct mpops_region_dev d;

	cr_assert_eq(mpops_region_create("devsz", &o, &r), 0);
	cr_assert_eq(mpops_region_dev(r, &d), 0);
	cr_assert_eq(d.size, 5u << 20);
	cr_assert_eq(d.off, 3u << 20);
	cr_assert_eq(mpops_region_size(r), 8u << 20);
	mpops_region_detach(r);
	/* Small regions keep 2 MiB, or half, for the host part. */
	o.dev_size = 0;
	o.size = 3u << 20;
	cr_assert_eq(mpops_region_create("devsz", &o, &r), 0);
	mpops_region_dev(r, &d);
	cr_assert_eq(d.size, 3u << 19);
	mpops_region_detach(r);
	/* A device part that leaves the host part less than 1 MiB. */
	o.size = 8u << 20;
	o.dev_size = 7u << 20 | 4096;
	r = NULL;
	cr_assert_eq(mpops_region_create("devsz", &o, &r), -EINVAL);
	cr_assert_null(r);
	cr_assert_eq(logcap_count("leave 1044480 for the host part, which needs at least 1048576: create the region larger or with a smaller dev_size"), 1);
	o.dev_size = 8u << 20;
	cr_assert_eq(mpops_region_create("devsz", &o, &r), -EINVAL);
	cr_assert_eq(logcap_count("which needs at least 1048576"), 2);
}
