/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file obj.h
 * Shared objects with per-process slots.
 *
 * A shared object (a queue, a device) can own things that are meaningful in
 * one process only: an fd, a mapping of a doorbell, a resolved fast-path
 * table. Register it in the region's object table: it then has an object
 * ID (a generation plus an index) that shared structs may store, and every
 * process gets its own *slot* for it, built by the object class's attach
 * hook the first time the process asks for it and torn down by its detach
 * hook.
 *
 * The owner bumps the object's epoch when it reconfigures, stops or
 * restarts it; a process whose slot was built at an older epoch rebuilds it
 * (detach + attach) on its next mpops_obj_slot() call, which is meant for a
 * cheap point such as the start of a burst. An ID whose object was freed,
 * or whose index was reused, gets -ESTALE instead of someone else's slot.
 *
 * Lifetime rule: a slot pointer is valid only while the object's epoch is
 * the one it was built at. Once the epoch moved, the next mpops_obj_slot()
 * call of any thread of the process may free it. So whoever keeps a slot
 * pointer past the call that returned it keeps the epoch beside it and
 * compares it with the shared epoch (mpops_obj_epoch_ref(), one load)
 * before each use; and an owner moves the epoch only when no user can be
 * inside a use of the old slot (the port layer: after it waited for bursts
 * in progress, before it lets them run again).
 *
 * Threads: any thread may call these. Slots are built and dropped under a
 * per-region lock, with the attach and detach hooks running under it (a
 * hook must not call mpops_obj_slot or mpops_obj_release itself).
 */
#ifndef MPOPS_OBJ_H
#define MPOPS_OBJ_H

#include <stdint.h>

#include <mpops/common.h>
#include <mpops/ops.h>
#include <mpops/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Object ID: generation (high 16 bits, never 0) and table index. */
typedef uint32_t mpops_obj_id_t;
#define MPOPS_OBJ_ID_NONE ((mpops_obj_id_t)0)
/** Capacity of a region's object table. */
#define MPOPS_OBJ_MAX 1024

struct mpops_region;

/*
 * Threads. Every call here may be made from any thread of a process
 * attached to the region, concurrently with any other, in any process:
 * the shared table is changed under its lock (across processes), and this
 * process's slots under a mutex of the region handle (across its threads).
 * The attach and detach hooks run in the calling thread with that mutex
 * held: a hook must not call mpops_obj_slot(), mpops_obj_release() or
 * mpops_obj_destroy() on the same region (it would wait for itself), but
 * may use the control channel. A slot pointer stays valid until this
 * process drops the slot: mpops_obj_slot() for the object at a later epoch
 * or after it was freed, mpops_obj_release(), mpops_obj_destroy(), or
 * detaching the region. Threads that share a slot must agree on when that
 * may happen (for example, one thread of the process rebuilds slots while
 * the others are outside their use of the old one).
 */

/**
 * The object class ops, an mpops ops class like any other: register an
 * implementation per object kind with MPOPS_OPS_IMPL(mpops_obj, name, &ops).
 *  - attach: build this process's slot for the object (allocate it, open
 *    fds, map resources; may ask the primary over the control channel) and
 *    return it in *slot. 0 or -errno. Called by mpops_obj_slot().
 *  - detach: release what attach built. Also called with the slot of an
 *    object that was freed meanwhile, and for every slot at region detach.
 *    0 or -errno (logged, not fatal).
 * Both run with this process's slot mutex held (see Threads above).
 */
#define MPOPS_OBJ_OPS(OP)                                                    \
	OP(int, attach, (struct mpops_region * /* r */, mpops_obj_id_t /* id */, \
			 void * /* shared */, void ** /* slot */))           \
	OP(int, detach, (struct mpops_region * /* r */, mpops_obj_id_t /* id */, \
			 void * /* shared */, void * /* slot */))

MPOPS_OPS_CLASS_DECLARE(mpops_obj, MPOPS_OBJ_OPS)

/**
 * Create an object of class @p cls_id (an ID of class mpops_obj) for the
 * shared data at @p shared, named @p name (may be NULL). Any writable
 * attach; the creator is its owner.
 * @return 0 and *id, -ENOSPC table full, -EINVAL @p cls_id is not an
 *   mpops_obj implementation or @p shared is outside the region, -EROFS.
 */
MPOPS_API int mpops_obj_create(struct mpops_region *r, mpops_ops_id_t cls_id,
			       mpops_off_t shared, const char *name,
			       mpops_obj_id_t *id);

/**
 * Free object @p id: its index may be reused with a new generation. This
 * process's slot is detached at once; other processes detach theirs on
 * their next call with the old ID (which then gets -ESTALE). Its owner
 * (the creating process) or the primary.
 * @return 0, -ESTALE already freed or reused, -ERANGE bad index, -EROFS,
 *   -EPERM neither the owner nor the primary.
 */
MPOPS_API int mpops_obj_destroy(struct mpops_region *r, mpops_obj_id_t id);

/**
 * This process's slot for @p id, built by the class's attach hook on first
 * use and rebuilt when the object's epoch moved on.
 * @return 0 and *slot, -ESTALE freed or reused ID, -ERANGE bad index,
 *   -ENOTSUP class not registered in this process, or the attach hook's
 *   error.
 */
MPOPS_API int mpops_obj_slot(struct mpops_region *r, mpops_obj_id_t id,
			     void **slot);

/**
 * Bump the epoch of @p id: every process's slot for it becomes stale (each
 * rebuilds its own at its next mpops_obj_slot()). Its owner or the primary.
 * @return the new epoch (> 0) or -ESTALE, -ERANGE, -EROFS, -EPERM.
 */
MPOPS_API int64_t mpops_obj_bump_epoch(struct mpops_region *r,
				       mpops_obj_id_t id);

/**
 * Where @p id's epoch lives in this process's mapping of the region, for a
 * fast path that checks with one load whether what it cached for the
 * object is still current (compare with the epoch it was built at; on a
 * mismatch call mpops_obj_slot() again). The address stays valid while the
 * region is attached; read it with __atomic_load_n(epoch, __ATOMIC_RELAXED)
 * (a plain pointer, not _Atomic, so that C++ callers can include this).
 * @return 0 and *epoch, -ESTALE, -ERANGE.
 */
MPOPS_API int mpops_obj_epoch_ref(struct mpops_region *r, mpops_obj_id_t id,
				  const uint32_t **epoch);

/** Shared data of @p id. @return 0 and *shared, -ESTALE, -ERANGE. */
MPOPS_API int mpops_obj_shared(struct mpops_region *r, mpops_obj_id_t id,
			       void **shared);

/**
 * Drop this process's slot for @p id now (the detach hook runs).
 * @return 0, -ENOENT no slot here, -ERANGE.
 */
MPOPS_API int mpops_obj_release(struct mpops_region *r, mpops_obj_id_t id);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_OBJ_H */
