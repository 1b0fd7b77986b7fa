/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared objects and their per-process slots.
 *
 * The shared table holds, per index, the generation of the object there,
 * its state, epoch, class (an mpops_obj ops ID) and shared data offset.
 * Each process keeps, per index, the slot its attach hook built, with the
 * ID and epoch it was built for; a mismatch on either means rebuild or
 * -ESTALE.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "ops_priv.h"
#include "region_priv.h"

MPOPS_OPS_CLASS_DEFINE(mpops_obj, MPOPS_OBJ_OPS)

#define OBJ_INDEX(id) ((id) & 0xffffu)
#define OBJ_GEN(id) ((id) >> 16)

int obj_table_init(struct mpops_region *r)
{
	struct obj_table_shared *t;
	mpops_off_t off;
	int rc;

	rc = mpops_alloc(r, sizeof(*t), 64, "mpops.objs", &off);
	if (rc < 0)
		return rc;
	t = mpops_ptr(r->base, off);
	shlock_init(&t->lock);
	t->capacity = MPOPS_OBJ_MAX;
	r->hdr->obj_table_off = off;
	return 0;
}

int obj_slots_init(struct mpops_region *r)
{
	r->slots = calloc(MPOPS_OBJ_MAX, sizeof(*r->slots));
	return r->slots ? 0 : -ENOMEM;
}

/* Run the detach hook of local slot @idx; caller holds slots_mu. */
static void slot_drop(struct mpops_region *r, unsigned idx)
{
	struct obj_slot_local *s = &r->slots[idx];
	int rc;

	if (!s->built)
		return;
	rc = MPOPS_OPS(mpops_obj, s->cls_id)->detach(r, s->id,
		mpops_ptr(r->base, s->shared), s->slot);
	if (rc < 0)
		log_warn("region '%s': detach hook of object %#x failed: %d",
			 r->name, s->id, rc);
	s->built = 0;
	s->slot = NULL;
	s->id = 0;
}

void obj_slots_release_all(struct mpops_region *r)
{
	if (!r->slots)
		return;
	pthread_mutex_lock(&r->slots_mu);
	for (unsigned i = 0; i < MPOPS_OBJ_MAX; i++)
		slot_drop(r, i);
	pthread_mutex_unlock(&r->slots_mu);
}

/* The live entry for @id, or NULL with the error in *rc (logged). */
static struct obj_entry_shared *entry_of(struct mpops_region *r, mpops_obj_id_t id,
					 int *rc)
{
	struct obj_entry_shared *e;

	if (!r || OBJ_INDEX(id) >= MPOPS_OBJ_MAX || OBJ_GEN(id) == 0) {
		*rc = r ? -ERANGE : -EINVAL;
		if (r)
			log_err("region '%s': object ID %#x is out of range (index < %d, generation > 0)",
				r->name, id, MPOPS_OBJ_MAX);
		return NULL;
	}
	e = &r->objs->e[OBJ_INDEX(id)];
	if (atomic_load_explicit(&e->state, memory_order_acquire) != OBJ_LIVE ||
	    atomic_load_explicit(&e->gen, memory_order_acquire) != OBJ_GEN(id)) {
		log_err("region '%s': object ID %#x is stale (the object was freed or its slot reused): look the object up again",
			r->name, id);
		*rc = -ESTALE;
		return NULL;
	}
	*rc = 0;
	return e;
}

int mpops_obj_create(struct mpops_region *r, mpops_ops_id_t cls_id,
		     mpops_off_t shared, const char *name, mpops_obj_id_t *id)
{
	const void *ops;
	char cls[MPOPS_OPS_NAME_MAX + 1];
	struct obj_table_shared *t;
	int rc;

	if (!r || !id)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_obj_create")) < 0)
		return rc;
	if (mpops_ops_name(cls_id, cls, NULL) < 0 || strcmp(cls, "mpops_obj") != 0) {
		log_err("region '%s': ops ID %u is not an object class (register one with MPOPS_OPS_IMPL(mpops_obj, ...))",
			r->name, cls_id);
		return -EINVAL;
	}
	if ((rc = mpops_ops_resolve(&mpops_class_mpops_obj, cls_id, &ops)) < 0)
		return rc == -ENOENT ? -ENOTSUP : rc;
	if (shared && (shared < r->hdr->hdr_size || shared >= r->size)) {
		log_err("region '%s': object data offset %#llx is outside the region",
			r->name, (unsigned long long)shared);
		return -EINVAL;
	}
	t = r->objs;
	if ((rc = shlock_lock_repair(&t->lock, "the region's object table", NULL, NULL)) < 0)
		return rc;
	for (unsigned i = 0; i < MPOPS_OBJ_MAX; i++) {
		struct obj_entry_shared *e = &t->e[i];
		uint32_t gen;

		if (atomic_load(&e->state) != OBJ_FREE)
			continue;
		gen = (atomic_load(&e->gen) + 1) & 0xffffu;
		if (gen == 0)
			gen = 1;
		e->cls_id = cls_id;
		e->shared = shared;
		e->owner_pid = getpid();
		memset(e->name, 0, sizeof(e->name));
		if (name)
			strlcpy(e->name, name, sizeof(e->name));
		atomic_store(&e->epoch, 1);
		atomic_store(&e->gen, gen);
		atomic_store_explicit(&e->state, OBJ_LIVE, memory_order_release);
		shlock_unlock(&t->lock);
		*id = (gen << 16) | i;
		return 0;
	}
	shlock_unlock(&t->lock);
	log_err("region '%s': object table is full (%d objects)", r->name, MPOPS_OBJ_MAX);
	return -ENOSPC;
}

static int owner_check(struct mpops_region *r, struct obj_entry_shared *e,
		       mpops_obj_id_t id, const char *what)
{
	if (e->owner_pid == getpid() || r->role == MPOPS_ROLE_PRIMARY)
		return 0;
	log_err("region '%s': %s of object %#x ('%s') by pid %d: only its owner (pid %d) or the primary may",
		r->name, what, id, e->name, (int)getpid(), (int)e->owner_pid);
	return -EPERM;
}

int mpops_obj_destroy(struct mpops_region *r, mpops_obj_id_t id)
{
	struct obj_entry_shared *e;
	int rc;

	if (r && (rc = region_writable(r, "mpops_obj_destroy")) < 0)
		return rc;
	if (!(e = entry_of(r, id, &rc)))
		return rc;
	if ((rc = owner_check(r, e, id, "destroy")) < 0)
		return rc;
	pthread_mutex_lock(&r->slots_mu);
	if (r->slots[OBJ_INDEX(id)].id == id)
		slot_drop(r, OBJ_INDEX(id));
	pthread_mutex_unlock(&r->slots_mu);
	if ((rc = shlock_lock_repair(&r->objs->lock, "the region's object table", NULL, NULL)) < 0)
		return rc;
	if (atomic_load(&e->gen) == OBJ_GEN(id))
		atomic_store_explicit(&e->state, OBJ_FREE, memory_order_release);
	shlock_unlock(&r->objs->lock);
	return 0;
}

int mpops_obj_slot(struct mpops_region *r, mpops_obj_id_t id, void **slot)
{
	struct obj_entry_shared *e;
	struct obj_slot_local *s;
	uint32_t epoch;
	void *built = NULL;
	int rc;

	if (!slot)
		return -EINVAL;
	if (!(e = entry_of(r, id, &rc))) {
		/* Drop what this process still holds for the dead object. */
		if (rc == -ESTALE) {
			pthread_mutex_lock(&r->slots_mu);
			if (r->slots[OBJ_INDEX(id)].id == id)
				slot_drop(r, OBJ_INDEX(id));
			pthread_mutex_unlock(&r->slots_mu);
		}
		return rc;
	}
	s = &r->slots[OBJ_INDEX(id)];
	epoch = atomic_load_explicit(&e->epoch, memory_order_acquire);
	if (s->built && s->id == id && s->epoch == epoch) {
		*slot = s->slot;
		return 0;
	}
	pthread_mutex_lock(&r->slots_mu);
	if (s->built && (s->id != id || s->epoch != epoch))
		slot_drop(r, OBJ_INDEX(id)); /* older object at this index, or older epoch */
	if (!s->built) {
		rc = MPOPS_OPS(mpops_obj, e->cls_id)->attach(r, id,
			mpops_ptr(r->base, e->shared), &built);
		if (rc < 0) {
			pthread_mutex_unlock(&r->slots_mu);
			if (rc != -ENOTSUP)
				log_err("region '%s': attach hook of object %#x ('%s') failed: %d",
					r->name, id, e->name, rc);
			return rc;
		}
		s->slot = built;
		s->shared = e->shared;
		s->cls_id = e->cls_id;
		s->id = id;
		s->epoch = epoch;
		s->built = 1;
	}
	*slot = s->slot;
	pthread_mutex_unlock(&r->slots_mu);
	return 0;
}

int64_t mpops_obj_bump_epoch(struct mpops_region *r, mpops_obj_id_t id)
{
	struct obj_entry_shared *e;
	uint32_t ep;
	int rc;

	if (r && (rc = region_writable(r, "mpops_obj_bump_epoch")) < 0)
		return rc;
	if (!(e = entry_of(r, id, &rc)))
		return rc;
	if ((rc = owner_check(r, e, id, "epoch bump")) < 0)
		return rc;
	ep = atomic_fetch_add_explicit(&e->epoch, 1, memory_order_acq_rel) + 1;
	if (ep == 0) /* never 0: a zeroed slot must not look current */
		ep = atomic_fetch_add(&e->epoch, 1) + 1;
	return ep;
}

int mpops_obj_epoch_ref(struct mpops_region *r, mpops_obj_id_t id,
			const uint32_t **epoch)
{
	struct obj_entry_shared *e;
	int rc;

	if (!epoch)
		return -EINVAL;
	if (!(e = entry_of(r, id, &rc)))
		return rc;
	/* Same representation; read with a relaxed __atomic_load_n. */
	*epoch = (const uint32_t *)&e->epoch;
	return 0;
}

int mpops_obj_shared(struct mpops_region *r, mpops_obj_id_t id, void **shared)
{
	struct obj_entry_shared *e;
	int rc;

	if (!shared)
		return -EINVAL;
	if (!(e = entry_of(r, id, &rc)))
		return rc;
	*shared = mpops_ptr(r->base, e->shared);
	return 0;
}

int mpops_obj_release(struct mpops_region *r, mpops_obj_id_t id)
{
	int rc = -ENOENT;

	if (!r)
		return -EINVAL;
	if (OBJ_INDEX(id) >= MPOPS_OBJ_MAX)
		return -ERANGE;
	pthread_mutex_lock(&r->slots_mu);
	if (r->slots[OBJ_INDEX(id)].built && r->slots[OBJ_INDEX(id)].id == id) {
		slot_drop(r, OBJ_INDEX(id));
		rc = 0;
	}
	pthread_mutex_unlock(&r->slots_mu);
	return rc;
}
