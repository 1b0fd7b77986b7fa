/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The registry inside one process, with the shared name table in memory the
 * test provides (as a framework's own shared memory would be). Entries that
 * "another process" appended are written through the private layout.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "demo_ops.h"
#include "helpers.h"
#include "ops_priv.h"

static struct ops_table_shared *tbl;

static void setup(void)
{
	logcap_start();
	tbl = aligned_alloc(64, ALIGN_UP(mpops_ops_table_size(), 64));
	cr_assert_not_null(tbl);
	cr_assert_eq(mpops_ops_table_init(tbl, mpops_ops_table_size()), 0);
}

static void teardown(void)
{
	mpops_ops_unbind(tbl);
	free(tbl);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 30);

/* Append an entry as another process would have. */
static mpops_ops_id_t foreign(const char *cls, const char *impl, uint64_t sig)
{
	uint32_t id = atomic_load(&tbl->count);
	struct ops_entry_shared *e = &tbl->e[id];

	strcpy(e->cls, cls);
	strcpy(e->impl, impl);
	e->sig_hash = sig;
	e->first_pid = 1;
	atomic_store(&e->state, OPS_ENTRY_VALID);
	atomic_store(&tbl->count, id + 1);
	return (mpops_ops_id_t)id;
}

static mpops_ops_id_t id_of(const struct mpops_ops_impl *impl)
{
	mpops_ops_id_t id = 0;

	cr_assert_eq(mpops_ops_id(impl, &id), 0);
	return id;
}

Test(ops, unbound_ids_resolve_to_the_dummy_which_logs_once)
{
	struct demo_dev_shared dev = { 0 };
	char buf[8];

	cr_assert_not_null(MPOPS_OPS(demo, 1));
	cr_assert_eq(MPOPS_OPS(demo, 1)->notify(&dev, 0), -ENOTSUP);
	cr_assert_eq(MPOPS_OPS(demo, 2)->notify(&dev, 0), -ENOTSUP);
	cr_assert_eq(MPOPS_OPS(demo, 2)->ident(buf, sizeof(buf)), -ENOTSUP);
	cr_assert_eq(dev.calls, 0);
	cr_assert_eq(logcap_count("demo.notify was called through an ops ID this process has not registered"), 1);
	cr_assert_eq(logcap_count("demo.ident was called"), 1);
}

Test(ops, ids_beyond_the_table_resolve_to_the_dummy_never_to_a_real_implementation)
{
	struct demo_dev_shared dev = { 0 };
	mpops_ops_id_t a;
	char buf[8];

	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	a = id_of(&mpops_impl_demo_alpha);
	cr_assert_eq(MPOPS_OPS(demo, a)->notify(&dev, 0), 'A');
	/* a + 256 shares a's low byte: it must not run alpha. */
	cr_assert_eq(MPOPS_OPS(demo, (mpops_ops_id_t)(a + MPOPS_OPS_MAX))->notify(&dev, 0),
		     -ENOTSUP);
	cr_assert_eq(dev.calls, 1);
	for (unsigned v = MPOPS_OPS_MAX; v <= 0xffff; v++)
		cr_assert_eq(MPOPS_OPS(demo, (mpops_ops_id_t)v)->notify,
			     MPOPS_OPS(demo, 0)->notify, "ID %u", v);
	cr_assert_eq(MPOPS_OPS(demo, 0xffff)->ident(buf, sizeof(buf)), -ENOTSUP);
	cr_assert_eq(dev.calls, 1);
}

Test(ops, bind_gives_ids_and_the_hot_path_finds_own_tables)
{
	struct demo_dev_shared dev = { 0 };
	mpops_ops_id_t a, b, c;

	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	a = id_of(&mpops_impl_demo_alpha);
	b = id_of(&mpops_impl_demo_beta);
	c = id_of(&mpops_impl_demo_gamma);
	cr_assert(a && b && c && a != b && b != c && a != c);
	cr_assert(a < MPOPS_OPS_MAX && b < MPOPS_OPS_MAX && c < MPOPS_OPS_MAX);
	/* The slot of each ID holds the implementation's own functions. */
	cr_assert_eq(MPOPS_OPS(demo, a)->notify, demo_alpha_ops.notify);
	cr_assert_eq(MPOPS_OPS(demo, a)->ident, demo_alpha_ops.ident);
	cr_assert_eq(MPOPS_OPS(demo, c)->notify, demo_gamma_ops.notify);
	cr_assert_eq(MPOPS_OPS(demo, b)->notify(&dev, 0), 'B');
	cr_assert_eq(dev.last_impl, 'B');
	/* The shared table names them. */
	cr_assert_str_eq(tbl->e[a].cls, "demo");
	cr_assert_str_eq(tbl->e[a].impl, "alpha");
	cr_assert_eq(tbl->e[a].sig_hash, ops_class_hash(&mpops_class_demo));
	/* Rebinding the same table keeps the IDs. */
	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	cr_assert_eq(id_of(&mpops_impl_demo_alpha), a);
	/* Unbinding puts the dummy back. */
	cr_assert_eq(mpops_ops_unbind(tbl), 0);
	cr_assert_eq(MPOPS_OPS(demo, a)->notify(&dev, 0), -ENOTSUP);
	cr_assert_eq(mpops_ops_unbind(tbl), -ENOENT);
}

Test(ops, find_by_name)
{
	mpops_ops_id_t id;

	cr_assert_eq(mpops_ops_find("demo", "beta", &id), -ENOTCONN);
	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	cr_assert_eq(mpops_ops_find("demo", "beta", &id), 0);
	cr_assert_eq(id, id_of(&mpops_impl_demo_beta));
	cr_assert_eq(mpops_ops_find("demo", "nope", &id), -ENOENT);
}

Test(ops, resolve_reports_each_kind_of_bad_id)
{
	const struct demo_ops *ops;
	mpops_ops_id_t other, remote;

	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	other = foreign("othercls", "x", 42);
	remote = foreign("demo", "remote", ops_class_hash(&mpops_class_demo));

	cr_assert_eq(mpops_ops_resolve_demo(0, &ops), -ERANGE);
	cr_assert_eq(mpops_ops_resolve_demo(200, &ops), -ERANGE);
	cr_assert_eq(logcap_count("ops ID 200 of class 'demo' is out of range"), 1);
	cr_assert_eq(mpops_ops_resolve_demo(other, &ops), -EINVAL);
	cr_assert_eq(logcap_count("is othercls/x, not an implementation of class 'demo'"), 1);
	cr_assert_eq(mpops_ops_resolve_demo(remote, &ops), -ENOENT);
	cr_assert_eq(logcap_count("demo/remote is not registered in this process: is the driver linked?"), 1);
	/* What to do when the implementation sits in a static archive. */
	cr_assert_eq(logcap_count("include a header with MPOPS_OPS_IMPL_REQUIRE(demo, remote), or link the archive whole: meson link_whole"), 1);
	/* Never NULL: the dummy. */
	cr_assert_eq(ops, mpops_class_demo.dummy);
	cr_assert_eq(mpops_ops_resolve_demo(id_of(&mpops_impl_demo_alpha), &ops), 0);
	cr_assert_eq(ops, &demo_alpha_ops);
}

Test(ops, resolve_before_any_bind_is_erange)
{
	const struct demo_ops *ops;

	cr_assert_eq(mpops_ops_resolve_demo(1, &ops), -ERANGE);
	cr_assert_eq(logcap_count("the process is not attached to a region"), 1);
}

Test(ops, signature_clash_is_eproto_naming_class_and_impl)
{
	foreign("demo", "alpha", ops_class_hash(&mpops_class_demo) ^ 1);
	cr_assert_eq(mpops_ops_bind(tbl, 0), -EPROTO);
	cr_assert_eq(logcap_count("ops class 'demo' differs between this process"), 1);
	cr_assert_eq(logcap_count("from demo/alpha, pid 1), registering demo/"), 1);
	/* Nothing stays bound after a failed bind. */
	cr_assert_eq(MPOPS_OPS(demo, 1)->notify, ((const struct demo_ops *)mpops_class_demo.dummy)->notify);
	cr_assert_eq(mpops_ops_unbind(tbl), -ENOENT);
}

Test(ops, full_name_table_is_enospc_naming_the_impl)
{
	while (atomic_load(&tbl->count) < MPOPS_OPS_MAX)
		foreign("filler", "f", 7);
	cr_assert_eq(mpops_ops_bind(tbl, 0), -ENOSPC);
	cr_assert_eq(logcap_count("ops name table is full (256 IDs): cannot register demo/"), 1);
}

Test(ops, uninitialised_table_is_eproto)
{
	void *mem = aligned_alloc(64, mpops_ops_table_size());

	memset(mem, 0, mpops_ops_table_size());
	cr_assert_eq(mpops_ops_bind(mem, 0), -EPROTO);
	cr_assert_eq(logcap_count("no ops name table of version"), 1);
	cr_assert_eq(mpops_ops_table_init(mem, 16), -EINVAL);
	cr_assert_eq(mpops_ops_table_init((char *)mem + 8, mpops_ops_table_size()), -EINVAL);
	free(mem);
}

Test(ops, a_second_table_is_ebusy)
{
	void *mem = aligned_alloc(64, mpops_ops_table_size());

	cr_assert_eq(mpops_ops_table_init(mem, mpops_ops_table_size()), 0);
	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	cr_assert_eq(mpops_ops_bind(mem, 0), -EBUSY);
	cr_assert_eq(logcap_count("already bound to another ops name table"), 1);
	cr_assert_eq(mpops_ops_unbind(tbl), 0);
	cr_assert_eq(mpops_ops_bind(mem, 0), 0);
	cr_assert_eq(mpops_ops_unbind(mem), 0);
	free(mem);
}

Test(ops, lookup_only_bind_appends_nothing)
{
	mpops_ops_id_t id;

	cr_assert_eq(mpops_ops_bind(tbl, MPOPS_OPS_BIND_F_LOOKUP_ONLY), 0);
	cr_assert_eq(atomic_load(&tbl->count), 1);
	cr_assert_eq(mpops_ops_id(&mpops_impl_demo_alpha, &id), -ENOENT);
}

Test(ops, late_registration_gets_an_id_at_once)
{
	static const struct mpops_ops_impl late = {
		.cls = &mpops_class_demo, .name = "late", .ops = &demo_alpha_ops,
	};
	static const struct mpops_ops_impl clash = {
		.cls = &mpops_class_demo, .name = "late", .ops = &demo_beta_ops,
	};
	static const struct mpops_ops_impl noname = {
		.cls = &mpops_class_demo, .name = "", .ops = &demo_beta_ops,
	};
	mpops_ops_id_t id;

	cr_assert_eq(mpops_ops_bind(tbl, 0), 0);
	cr_assert_eq(mpops_ops_register(&late), 0);
	id = id_of(&late);
	cr_assert_eq(MPOPS_OPS(demo, id)->notify, demo_alpha_ops.notify);
	cr_assert_eq(mpops_ops_register(&late), 0);	/* twice: harmless */
	cr_assert_eq(mpops_ops_register(&clash), -EEXIST);
	cr_assert_eq(mpops_ops_register(&noname), -EINVAL);
	cr_assert_eq(mpops_ops_register(NULL), -EINVAL);
}

/* A type's code in the signature: sizeof << 2 | kind. */
#define CODE(T, kind) ((uint32_t)(sizeof(T) << 2 | (kind)))

Test(ops, signature_covers_the_size_and_signedness_of_every_type)
{
	const uint32_t want[] = {
		CODE(int, MPOPS_OPS_KIND_SIGNED), CODE(void *, MPOPS_OPS_KIND_OTHER),
		CODE(uint32_t, MPOPS_OPS_KIND_UNSIGNED), 0,
		CODE(int, MPOPS_OPS_KIND_SIGNED), CODE(char *, MPOPS_OPS_KIND_OTHER),
		CODE(size_t, MPOPS_OPS_KIND_UNSIGNED), 0,
	};
	uint32_t types[sizeof(want) / sizeof(want[0])];
	struct mpops_ops_class changed = mpops_class_demo;

	cr_assert_eq(mpops_class_demo.ntypes, sizeof(want) / sizeof(want[0]));
	cr_assert_arr_eq(mpops_class_demo.types, want, sizeof(want));
	/* notify's queue type 4 bytes wider, then signed: the same text, other hashes. */
	memcpy(types, want, sizeof(want));
	changed.types = types;
	types[2] = CODE(uint64_t, MPOPS_OPS_KIND_UNSIGNED);
	cr_assert_neq(ops_class_hash(&changed), ops_class_hash(&mpops_class_demo));
	types[2] = CODE(int32_t, MPOPS_OPS_KIND_SIGNED);
	cr_assert_neq(ops_class_hash(&changed), ops_class_hash(&mpops_class_demo));
	types[2] = want[2];
	cr_assert_eq(ops_class_hash(&changed), ops_class_hash(&mpops_class_demo));
}

Test(ops, signature_is_the_member_list)
{
	struct mpops_ops_class changed = mpops_class_demo;

	cr_assert_str_eq(mpops_class_demo.signature,
		"int notify(struct demo_dev_shared *, demo_queue_t);"
		"int ident(char * , size_t );");
	cr_assert_eq(mpops_class_demo.ops_size, sizeof(struct demo_ops));
	/* Comments (a space once stringified) and spacing are not part of it. */
	changed.signature = "int notify(struct demo_dev_shared*,demo_queue_t);"
		"int ident(char *, size_t);";
	cr_assert_eq(ops_class_hash(&changed), ops_class_hash(&mpops_class_demo));
	/* A class of the same name with other members clashes. */
	changed.signature = "int notify(struct demo_dev_shared *, uint64_t);";
	cr_assert_neq(ops_class_hash(&changed), ops_class_hash(&mpops_class_demo));
	cr_assert_eq(mpops_ops_class_register(&changed), -EEXIST);
	cr_assert_eq(logcap_count("ops class 'demo' is defined twice in this process with different members"), 1);
}
