/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "demo_ops.h"
#include "helpers.h"

static struct mpops_region *r;
static char out[1 << 15];

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("audit");
	cr_assert_not_null(r);
}

static void teardown(void)
{
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 60);

/* The shared state a driver would set up: devices holding IDs, objects. */
static struct demo_devs_shared *populate(void)
{
	struct demo_devs_shared *devs;
	mpops_off_t off;

	cr_assert_eq(mpops_alloc(r, sizeof(*devs), 0, "demo.devs", &off), 0);
	devs = mpops_ptr(mpops_region_base(r), off);
	devs->n = 3;
	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_alpha, &devs->dev[0].ops_id), 0);
	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_beta, &devs->dev[1].ops_id), 0);
	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_gamma, &devs->dev[2].ops_id), 0);
	for (int i = 0; i < 3; i++)
		MPOPS_OPS(demo, devs->dev[i].ops_id)->notify(&devs->dev[i], 0);
	cr_assert_eq(mpops_root_set(r, "devs", off), 0);
	return devs;
}

Test(audit, shared_state_set_up_by_the_library_is_clean)
{
	struct mpops_audit_finding f[4];
	const char *args[] = { "audit", rundir_path(), "audit", NULL };
	int st;

	populate();
	cr_assert_eq(mpops_audit(r, NULL, f, 4), 0);
	/* And from a secondary that resolved and called through every ID. */
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "findings=0"), "%s", out);
	cr_assert_eq(mpops_audit(r, NULL, f, 4), 0);
}

Test(audit, packet_bytes_that_look_like_an_address_are_not_a_finding)
{
	struct mpops_pktpool_opts po = { .sz = sizeof(po), .count = 64 };
	struct mpops_pktpool_layout l = { .sz = sizeof(l) };
	struct mpops_audit_finding f[4];
	struct mpops_pktpool *p;
	mpops_off_t pool, other;
	uint64_t addr = (uint64_t)(uintptr_t)mpops_region_base(r) + 4096;

	cr_assert_eq(mpops_pktpool_create(r, "aud", &po, &pool), 0);
	cr_assert_eq(mpops_pktpool_open(r, pool, &p), 0);
	cr_assert_eq(mpops_pktpool_layout(p, &l), 0);
	/* What a peer sent may be anything, an address of ours included. */
	memcpy((char *)mpops_region_base(r) + l.data_off + 8 * l.stride + 16, &addr, 8);
	cr_assert_eq(mpops_audit(r, NULL, f, 4), 0);
	/* The same value in an object of its own is one. */
	cr_assert_eq(mpops_alloc(r, 64, 64, "plain", &other), 0);
	memcpy(mpops_ptr(mpops_region_base(r), other), &addr, 8);
	cr_assert_eq(mpops_audit(r, NULL, f, 4), 1);
	mpops_pktpool_close(p);
}

Test(audit, planted_function_pointer_is_found_with_its_object)
{
	struct origin_bug_dev *o;
	struct mpops_audit_finding f[4];
	mpops_off_t off;

	populate();
	cr_assert_eq(mpops_alloc(r, sizeof(*o), 0, "origin.dev", &off), 0);
	o = mpops_ptr(mpops_region_base(r), off);
	o->raw_notify = demo_alpha_notify;
	cr_assert_eq(mpops_audit(r, NULL, f, 4), 1);
	cr_assert_eq(f[0].kind, MPOPS_AUDIT_CODE);
	cr_assert_eq(f[0].off, off + offsetof(struct origin_bug_dev, raw_notify));
	cr_assert_eq(f[0].object_off, off);
	cr_assert_str_eq(f[0].object, "origin.dev");
	cr_assert(strstr(f[0].mapping, "test_audit"), "%s", f[0].mapping);
	cr_assert_eq(logcap_count("audit: code pointer"), 1);
	cr_assert_eq(logcap_count("in object 'origin.dev'"), 1);
	/* Objects can be skipped by tag prefix (e.g. packet payloads). */
	cr_assert_eq(mpops_audit(r, "origin.", f, 4), 0);
}

Test(audit, heap_stack_and_region_addresses_are_found)
{
	struct mpops_audit_finding f[8];
	uint64_t *slots;
	mpops_off_t off;
	int local = 0;
	/* brk memory is what /proc/self/maps calls [heap] (malloc's small
	 * chunks, without a sanitizer's allocator in between). */
	void *heap = sbrk(64);
	int n;

	cr_assert_eq(mpops_alloc(r, 64, 0, "planted", &off), 0);
	slots = mpops_ptr(mpops_region_base(r), off);
	slots[0] = (uint64_t)(uintptr_t)heap;
	slots[1] = (uint64_t)(uintptr_t)&local;
	slots[2] = (uint64_t)(uintptr_t)&slots[3];	/* a pointer where an offset belongs */
	slots[3] = 12345;				/* plain data */
	n = mpops_audit(r, NULL, f, 8);
	cr_assert_eq(n, 3);
	cr_assert_eq(f[0].kind, MPOPS_AUDIT_HEAP);
	cr_assert_eq(f[0].off, off);
	cr_assert_eq(f[1].kind, MPOPS_AUDIT_STACK);
	cr_assert_eq(f[1].off, off + 8);
	cr_assert_eq(f[2].kind, MPOPS_AUDIT_REGION);
	cr_assert_str_eq(mpops_audit_kind_name(f[2].kind), "region");
	/* More findings than room: the count still tells. */
	cr_assert_eq(mpops_audit(r, NULL, f, 1), 3);
}

Test(audit, caller_memory_name_table)
{
	struct mpops_audit_finding f[2];
	void *mem = aligned_alloc(64, mpops_ops_table_size());
	uint64_t *w = mem;

	cr_assert_eq(mpops_ops_table_init(mem, mpops_ops_table_size()), 0);
	cr_assert_eq(mpops_audit_mem(mem, mpops_ops_table_size(), f, 2), 0);
	{
		int (*fn)(struct demo_dev_shared *, uint32_t) = demo_alpha_notify;
		memcpy(&w[20], &fn, sizeof(fn));	/* a function pointer */
	}
	cr_assert_eq(mpops_audit_mem(mem, mpops_ops_table_size(), f, 2), 1);
	cr_assert_eq(f[0].off, 160);
	cr_assert_eq(mpops_audit_mem(NULL, 8, f, 2), -EINVAL);
	free(mem);
}
