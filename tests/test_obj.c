/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"
#include "ops_priv.h"
#include "region_priv.h"

/* ---- an object class counting its hooks -------------------------------- */

struct counted_shared {
	uint32_t attaches;
	uint32_t detaches;
	int32_t fail_with;
};

static int counted_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void **slot)
{
	struct counted_shared *c = shared;
	int *s;

	(void)r;
	if (c->fail_with)
		return c->fail_with;
	s = malloc(sizeof(*s));
	*s = (int)id;
	c->attaches++;
	*slot = s;
	return 0;
}

static int counted_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void *slot)
{
	struct counted_shared *c = shared;

	(void)r;
	(void)id;
	free(slot);
	c->detaches++;
	return 0;
}

static const struct mpops_obj_ops counted_ops = { .attach = counted_attach, .detach = counted_detach };
MPOPS_OPS_IMPL(mpops_obj, t_counted, &counted_ops)

/* ---- the kick class: the same name as mp-secondary's, our own code ------ */

struct kick_shared {
	uint32_t attaches;
	uint32_t detaches;
	uint32_t go;
	uint32_t done;
	mpops_obj_id_t id;
};

static int kick_fd = -1;

static int kick_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void **slot)
{
	int *fd = malloc(sizeof(*fd));

	(void)r; (void)id; (void)shared;
	*fd = dup(kick_fd);
	*slot = fd;
	return 0;
}

static int kick_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void *slot)
{
	(void)r; (void)id; (void)shared;
	close(*(int *)slot);
	free(slot);
	return 0;
}

static const struct mpops_obj_ops kick_ops = { .attach = kick_attach, .detach = kick_detach };
MPOPS_OPS_IMPL(mpops_obj, test_kick, &kick_ops)

static int kick_handler(struct mpops_region *r, const struct mpops_msg *req,
			struct mpops_msg *reply, void *arg)
{
	(void)r; (void)req; (void)arg;
	return mpops_msg_add_fd(reply, kick_fd);
}

/* ------------------------------------------------------------------------- */

static struct mpops_region *r;
static char out[1 << 15];

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("obj");
	cr_assert_not_null(r);
}

static void teardown(void)
{
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(obj, .init = setup, .fini = teardown, .timeout = 60);

static mpops_ops_id_t cls(const struct mpops_ops_impl *impl)
{
	mpops_ops_id_t id;

	cr_assert_eq(mpops_ops_id(impl, &id), 0);
	return id;
}

static struct counted_shared *counted_new(mpops_obj_id_t *id)
{
	mpops_off_t off;

	cr_assert_eq(mpops_alloc(r, sizeof(struct counted_shared), 0, "counted", &off), 0);
	cr_assert_eq(mpops_obj_create(r, cls(&mpops_impl_mpops_obj_t_counted), off, "c", id), 0);
	return mpops_ptr(mpops_region_base(r), off);
}

Test(obj, slot_is_built_once_per_epoch)
{
	mpops_obj_id_t id;
	struct counted_shared *c = counted_new(&id);
	void *s1, *s2;
	int64_t ep;

	cr_assert_eq(mpops_obj_slot(r, id, &s1), 0);
	cr_assert_eq(*(int *)s1, (int)id);
	cr_assert_eq(mpops_obj_slot(r, id, &s2), 0);
	cr_assert_eq(s1, s2);
	cr_assert_eq(c->attaches, 1);
	ep = mpops_obj_bump_epoch(r, id);
	cr_assert_eq(ep, 2);
	cr_assert_eq(mpops_obj_slot(r, id, &s2), 0);
	cr_assert_eq(c->attaches, 2);
	cr_assert_eq(c->detaches, 1);
	cr_assert_eq(mpops_obj_release(r, id), 0);
	cr_assert_eq(c->detaches, 2);
	cr_assert_eq(mpops_obj_release(r, id), -ENOENT);
}

Test(obj, epoch_ref_follows_every_bump_and_refuses_stale_ids)
{
	mpops_obj_id_t id;
	const uint32_t *ep;

	counted_new(&id);
	cr_assert_eq(mpops_obj_epoch_ref(r, id, &ep), 0);
	cr_assert_eq(__atomic_load_n(ep, __ATOMIC_RELAXED), 1);
	cr_assert_eq(mpops_obj_bump_epoch(r, id), 2);
	cr_assert_eq(__atomic_load_n(ep, __ATOMIC_RELAXED), 2);
	cr_assert_eq(mpops_obj_epoch_ref(r, 0x10000u | MPOPS_OBJ_MAX, &ep), -ERANGE);
	cr_assert_eq(mpops_obj_destroy(r, id), 0);
	cr_assert_eq(mpops_obj_epoch_ref(r, id, &ep), -ESTALE);
}

Test(obj, freed_and_reused_ids_are_stale)
{
	mpops_obj_id_t id, id2;
	struct counted_shared *c = counted_new(&id);
	void *s, *sh;

	cr_assert_eq(mpops_obj_slot(r, id, &s), 0);
	cr_assert_eq(mpops_obj_destroy(r, id), 0);
	cr_assert_eq(c->detaches, 1);	/* our slot went with it */
	cr_assert_eq(mpops_obj_slot(r, id, &s), -ESTALE);
	cr_assert_eq(mpops_obj_shared(r, id, &sh), -ESTALE);
	cr_assert_eq(mpops_obj_destroy(r, id), -ESTALE);
	cr_assert_eq(mpops_obj_bump_epoch(r, id), -ESTALE);
	cr_assert_geq(logcap_count("is stale (the object was freed or its slot reused)"), 4);
	/* The index is reused with a new generation. */
	counted_new(&id2);
	cr_assert_eq(id2 & 0xffff, id & 0xffff);
	cr_assert_neq(id2, id);
	cr_assert_eq(mpops_obj_slot(r, id, &s), -ESTALE);
	cr_assert_eq(mpops_obj_slot(r, id2, &s), 0);
}

Test(obj, out_of_range_ids_are_erange)
{
	void *s;

	cr_assert_eq(mpops_obj_slot(r, 0, &s), -ERANGE);
	cr_assert_eq(mpops_obj_slot(r, (1u << 16) | 5000, &s), -ERANGE);
	cr_assert_eq(mpops_obj_release(r, 5000), -ERANGE);
	cr_assert_eq(logcap_count("is out of range"), 2);
}

Test(obj, class_must_be_an_object_class_registered_here)
{
	struct ops_table_shared *t = r->ops_table;
	mpops_obj_id_t id;
	mpops_ops_id_t elsewhere;

	cr_assert_eq(mpops_obj_create(r, cls(&mpops_impl_demo_alpha), 0, "x", &id), -EINVAL);
	cr_assert_eq(logcap_count("is not an object class"), 1);
	/* An object class some other process registered, not this one. */
	shlock_lock(&t->lock);
	elsewhere = (mpops_ops_id_t)atomic_load(&t->count);
	strcpy(t->e[elsewhere].cls, "mpops_obj");
	strcpy(t->e[elsewhere].impl, "elsewhere");
	t->e[elsewhere].sig_hash = ops_class_hash(&mpops_class_mpops_obj);
	atomic_store(&t->e[elsewhere].state, OPS_ENTRY_VALID);
	atomic_store(&t->count, elsewhere + 1);
	shlock_unlock(&t->lock);
	cr_assert_eq(mpops_obj_create(r, elsewhere, 0, "x", &id), -ENOTSUP);
	cr_assert_eq(logcap_count("mpops_obj/elsewhere is not registered in this process"), 1);
}

Test(obj, attach_hook_error_is_returned)
{
	mpops_obj_id_t id;
	struct counted_shared *c = counted_new(&id);
	void *s;

	c->fail_with = -EIO;
	cr_assert_eq(mpops_obj_slot(r, id, &s), -EIO);
	cr_assert_eq(logcap_count("attach hook of object"), 1);
	c->fail_with = 0;
	cr_assert_eq(mpops_obj_slot(r, id, &s), 0);
}

Test(obj, full_table_is_enospc)
{
	mpops_obj_id_t id;
	int rc = 0, n = 0;

	while (n <= MPOPS_OBJ_MAX && (rc = mpops_obj_create(r, cls(&mpops_impl_mpops_obj_t_counted), 0, NULL, &id)) == 0)
		n++;
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_eq(n, MPOPS_OBJ_MAX);
	cr_assert_eq(logcap_count("object table is full"), 1);
}

Test(obj, secondary_builds_its_own_slot_with_an_fd_from_the_primary)
{
	const char *args[] = { "slot", rundir_path(), "obj", NULL };
	struct kick_shared *ks;
	eventfd_t v = 0;
	mpops_off_t off;
	char buf[4096];
	int st, fd;
	pid_t pid;

	kick_fd = eventfd(0, EFD_CLOEXEC);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_KICKFD, kick_handler, NULL), 0);
	cr_assert_eq(mpops_alloc(r, sizeof(*ks), 0, "kick", &off), 0);
	ks = mpops_ptr(mpops_region_base(r), off);
	cr_assert_eq(mpops_obj_create(r, cls(&mpops_impl_mpops_obj_test_kick), off, "kick", &ks->id), 0);
	cr_assert_eq(mpops_root_set(r, "kick", off), 0);

	pid = peer_start("mp-secondary", args, &fd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(peer_wait_line(fd, "kicked 1", buf, sizeof(buf), 10000), 0, "%s", buf);
	cr_assert_eq(eventfd_read(kick_fd, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(__atomic_load_n(&ks->attaches, __ATOMIC_SEQ_CST), 1);

	/* Reconfigure: the secondary's next slot lookup rebuilds. */
	cr_assert_eq(mpops_obj_bump_epoch(r, ks->id), 2);
	__atomic_store_n(&ks->go, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(peer_wait_line(fd, "kicked 2", buf, sizeof(buf), 10000), 0, "%s", buf);
	cr_assert_eq(eventfd_read(kick_fd, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(__atomic_load_n(&ks->attaches, __ATOMIC_SEQ_CST), 2);
	cr_assert_eq(__atomic_load_n(&ks->detaches, __ATOMIC_SEQ_CST), 1);

	/* Free it: the secondary's old ID is stale and its slot released. */
	cr_assert_eq(mpops_obj_destroy(r, ks->id), 0);
	__atomic_store_n(&ks->go, 2, __ATOMIC_SEQ_CST);
	strcpy(out, buf);
	st = peer_finish(pid, fd, out, sizeof(out), 10000);
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "slot3=-116"), "%s", out);	/* -ESTALE */
	cr_assert_eq(__atomic_load_n(&ks->detaches, __ATOMIC_SEQ_CST), 2);
	close(kick_fd);
}
