/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocator for shared objects: a heap of contiguous blocks after the
 * region header, each with a 64-byte header, first-fit from an
 * offset-linked free list, coalescing on free. Not for the fast path (the
 * packet pool has its own lock-free structure); protected by a robust
 * shared lock so a process dying inside it does not wedge the others.
 *
 * A call changes several headers and links one store at a time, so a
 * process killed in the middle would leave a heap nobody can walk. Each
 * call first saves what it is about to change in an undo log (the
 * allocator's fields, then each block's header and links before its first
 * write); the next locker after a death puts the saved bytes back, checks
 * the whole heap, and either goes on or, if the heap is still not sound,
 * leaves the lock not recoverable: every later call fails with
 * -ENOTRECOVERABLE instead of handing out memory twice.
 *
 * Every link is an offset from the region base, so any process can
 * allocate and free whatever address it mapped the region at.
 */
#include <errno.h>
#include <string.h>

#include "region_priv.h"

#define BLK_HDR 64u
#define BLK_MIN 128u
#define BLK_USED 0x55534544u /* "USED" */
#define BLK_FREE 0x46524545u /* "FREE" */

struct blk_shared {
	uint64_t size;		/* whole block, header included, multiple of 64 */
	uint64_t prev_size;	/* physically previous block, 0 for the first */
	uint32_t magic;
	uint32_t pad;
	uint64_t req_size;	/* bytes the caller asked for */
	char tag[MPOPS_NAME_MAX + 1];
};
_Static_assert(sizeof(struct blk_shared) == BLK_HDR, "block header layout");

/* Free-list links live in a free block's payload. */
struct free_links {
	mpops_off_t next;
	mpops_off_t prev;
};

static inline struct blk_shared *blk(struct mpops_region *r, mpops_off_t off)
{
	return (struct blk_shared *)((char *)r->base + off);
}

static inline struct free_links *links(struct mpops_region *r, mpops_off_t off)
{
	return (struct free_links *)((char *)r->base + off + BLK_HDR);
}

static inline mpops_off_t heap_end(struct mpops_region *r)
{
	return r->hdr->alloc.heap_off + r->hdr->alloc.heap_size;
}

void alloc_init(struct alloc_shared *a, mpops_off_t heap_off, uint64_t heap_size)
{
	struct blk_shared *b = (struct blk_shared *)((char *)a - offsetof(struct region_hdr_shared, alloc) + heap_off);
	struct free_links *l = (struct free_links *)((char *)b + BLK_HDR);

	shlock_init(&a->lock);
	heap_size &= ~(uint64_t)(BLK_HDR - 1);
	a->heap_off = heap_off;
	a->heap_size = heap_size;
	b->size = heap_size;
	b->prev_size = 0;
	b->magic = BLK_FREE;
	l->next = l->prev = 0;
	a->free_head = heap_off;
	a->free_blocks = 1;
}

/* ==== the undo log ====================================================== */

/* Stores into the log reach memory in program order: the compiler may not
 * move them across this (the CPU does not, for plain stores on x86; a
 * release store says so on every architecture). */
static inline void undo_publish_u32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* A call begins: save the allocator's own fields. */
static void undo_begin(struct alloc_shared *a)
{
	struct alloc_undo_shared *u = &a->undo;

	u->n = 0;
	u->free_head = a->free_head;
	u->bytes_used = a->bytes_used;
	u->objects = a->objects;
	u->free_blocks = a->free_blocks;
	undo_publish_u32(&u->active, 1);
}

/* Save block @off's header and links, before the call's first write to it. */
static void undo_save(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_undo_shared *u = &r->hdr->alloc.undo;
	uint32_t n = u->n;

	if (!off)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (u->e[i].off == off)
			return;
	if (n == ALLOC_UNDO_MAX) {
		/* Cannot happen: a call touches at most 9 blocks. */
		log_err("region '%s': allocator undo log full", r->name);
		return;
	}
	u->e[n].off = off;
	memcpy(u->e[n].bytes, blk(r, off), ALLOC_UNDO_BYTES);
	undo_publish_u32(&u->n, n + 1);
}

/* The call is done: nothing to undo any more. */
static void undo_end(struct alloc_shared *a)
{
	undo_publish_u32(&a->undo.active, 0);
	a->undo.n = 0;
}

/*
 * Walk the heap and the free list; @return NULL when both agree with the
 * allocator's fields, else what is wrong.
 */
static const char *heap_bad(struct mpops_region *r)
{
	struct alloc_shared *a = &r->hdr->alloc;
	mpops_off_t b = a->heap_off, end = heap_end(r), f;
	uint64_t prev = 0, used = 0;
	uint32_t objects = 0, nfree = 0, listed = 0;

	while (b < end) {
		struct blk_shared *h = blk(r, b);

		if (h->size < BLK_HDR || h->size % BLK_HDR || h->size > end - b)
			return "a block size runs off the heap";
		if (h->prev_size != prev)
			return "a block's previous size does not match";
		if (h->magic == BLK_USED) {
			used += h->size;
			objects++;
		} else if (h->magic == BLK_FREE) {
			nfree++;
		} else {
			return "a block is neither used nor free";
		}
		prev = h->size;
		b += h->size;
	}
	if (used != a->bytes_used || objects != a->objects || nfree != a->free_blocks)
		return "the counts do not match the blocks";
	prev = 0;
	for (f = a->free_head; f; f = links(r, f)->next) {
		if (f < a->heap_off || f >= end || f % BLK_HDR || blk(r, f)->magic != BLK_FREE ||
		    links(r, f)->prev != prev || ++listed > nfree)
			return "the free list is broken";
		prev = f;
	}
	return listed == nfree ? NULL : "a free block is not on the free list";
}

/* The lock's holder died: undo its call, then check the heap. */
static int alloc_repair(void *arg)
{
	struct mpops_region *r = arg;
	struct alloc_shared *a = &r->hdr->alloc;
	struct alloc_undo_shared *u = &a->undo;
	const char *bad;

	if (u->active) {
		uint32_t n = u->n < ALLOC_UNDO_MAX ? u->n : ALLOC_UNDO_MAX;

		for (uint32_t i = n; i-- > 0;) {
			mpops_off_t off = u->e[i].off;

			if (off < a->heap_off || off > heap_end(r) - ALLOC_UNDO_BYTES)
				return -EIO;
			memcpy(blk(r, off), u->e[i].bytes, ALLOC_UNDO_BYTES);
		}
		a->free_head = u->free_head;
		a->bytes_used = u->bytes_used;
		a->objects = u->objects;
		a->free_blocks = u->free_blocks;
		u->repairs++;
		undo_end(a);
		log_warn("region '%s': the allocator call of a process that died inside was undone (%u blocks put back)",
			 r->name, n);
	}
	if ((bad = heap_bad(r))) {
		log_err("region '%s': the allocator's heap is not sound after a process died inside it: %s",
			r->name, bad);
		return -EIO;
	}
	return 0;
}

static int alloc_lock(struct mpops_region *r)
{
	return shlock_lock_repair(&r->hdr->alloc.lock, "the region's allocator", alloc_repair, r);
}

/* ==== the free list ===================================================== */

static void free_unlink(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a = &r->hdr->alloc;
	struct free_links *l = links(r, off);

	undo_save(r, off);
	undo_save(r, l->prev);
	undo_save(r, l->next);
	if (l->prev)
		links(r, l->prev)->next = l->next;
	else
		a->free_head = l->next;
	if (l->next)
		links(r, l->next)->prev = l->prev;
	l->next = l->prev = 0;
	a->free_blocks--;
}

static void free_push(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a = &r->hdr->alloc;
	struct free_links *l = links(r, off);

	undo_save(r, off);
	undo_save(r, a->free_head);
	blk(r, off)->magic = BLK_FREE;
	l->prev = 0;
	l->next = a->free_head;
	if (a->free_head)
		links(r, a->free_head)->prev = off;
	a->free_head = off;
	a->free_blocks++;
}

/* Split block @off so it is @size bytes; the rest becomes a free block. */
static void split(struct mpops_region *r, mpops_off_t off, uint64_t size)
{
	struct blk_shared *b = blk(r, off);
	uint64_t rest = b->size - size;
	mpops_off_t tail = off + size;

	if (rest < BLK_MIN)
		return;
	undo_save(r, tail);
	if (tail + rest < heap_end(r))
		undo_save(r, tail + rest);
	b->size = size;
	blk(r, tail)->size = rest;
	blk(r, tail)->prev_size = size;
	memset(blk(r, tail)->tag, 0, sizeof(blk(r, tail)->tag));
	if (tail + rest < heap_end(r))
		blk(r, tail + rest)->prev_size = rest;
	free_push(r, tail);
}

int mpops_alloc(struct mpops_region *r, size_t size, size_t align,
		const char *tag, mpops_off_t *out)
{
	struct alloc_shared *a;
	mpops_off_t off;
	int rc;

	if (!r || !out || size == 0 || (align & (align - 1)) ||
	    size > r->size || align > r->size / 2) {
		log_err("mpops_alloc: invalid size %zu or alignment %zu (a power of two)",
			size, align);
		return -EINVAL;
	}
	if ((rc = region_writable(r, "mpops_alloc")) < 0)
		return rc;
	if (align < BLK_HDR)
		align = BLK_HDR;
	a = &r->hdr->alloc;
	if ((rc = alloc_lock(r)) < 0)
		return rc;
	for (off = a->free_head; off; off = links(r, off)->next) {
		struct blk_shared *b = blk(r, off);
		mpops_off_t pay = ALIGN_UP(off + BLK_HDR, align);
		uint64_t need;

		/* A gap before the aligned payload must hold a free block. */
		while (pay - BLK_HDR != off && pay - BLK_HDR - off < BLK_MIN)
			pay += align;
		need = ALIGN_UP(pay + size, BLK_HDR) - off;
		if (need > b->size)
			continue;
		undo_begin(a);
		free_unlink(r, off);
		test_point("alloc.unlinked");
		if (pay - BLK_HDR != off) {
			/* Give the gap back as a free block of its own. */
			uint64_t gap = pay - BLK_HDR - off;
			mpops_off_t nb = off + gap;

			undo_save(r, nb);
			if (off + b->size < heap_end(r))
				undo_save(r, off + b->size);
			blk(r, nb)->size = b->size - gap;
			blk(r, nb)->prev_size = gap;
			if (nb + blk(r, nb)->size < heap_end(r))
				blk(r, nb + blk(r, nb)->size)->prev_size = blk(r, nb)->size;
			b->size = gap;
			free_push(r, off);
			off = nb;
			b = blk(r, off);
			need -= gap;
		}
		split(r, off, need);
		test_point("alloc.split");
		b->magic = BLK_USED;
		b->req_size = size;
		memset(b->tag, 0, sizeof(b->tag));
		if (tag)
			strlcpy(b->tag, tag, sizeof(b->tag));
		memset((char *)b + BLK_HDR, 0, b->size - BLK_HDR);
		a->bytes_used += b->size;
		a->objects++;
		undo_end(a);
		shlock_unlock(&a->lock);
		*out = off + BLK_HDR;
		return 0;
	}
	shlock_unlock(&a->lock);
	log_err("region '%s' is out of memory for %zu bytes (tag '%s'): create it with a larger size",
		r->name, size, tag ? tag : "");
	return -ENOMEM;
}

/* Walk the heap to find the block that contains @off; caller holds the lock. */
static mpops_off_t block_of(struct mpops_region *r, mpops_off_t off)
{
	mpops_off_t b = r->hdr->alloc.heap_off;

	while (b < heap_end(r)) {
		uint64_t sz = blk(r, b)->size;

		if (sz < BLK_HDR || sz > heap_end(r) - b)
			return 0; /* corrupt: stop rather than run off */
		if (off >= b && off < b + sz)
			return b;
		b += sz;
	}
	return 0;
}

int mpops_free(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a;
	struct blk_shared *b;
	mpops_off_t bo;
	int rc;

	if (!r)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_free")) < 0)
		return rc;
	a = &r->hdr->alloc;
	if ((rc = alloc_lock(r)) < 0)
		return rc;
	bo = off >= BLK_HDR ? block_of(r, off) : 0;
	if (!bo || bo + BLK_HDR != off || blk(r, bo)->magic != BLK_USED) {
		shlock_unlock(&a->lock);
		log_err("region '%s': mpops_free(%#llx): not an allocated object (double free or bad offset)",
			r->name, (unsigned long long)off);
		return -EINVAL;
	}
	b = blk(r, bo);
	undo_begin(a);
	undo_save(r, bo);
	if (bo + b->size < heap_end(r))
		undo_save(r, bo + b->size);
	if (b->prev_size)
		undo_save(r, bo - b->prev_size);
	a->bytes_used -= b->size;
	a->objects--;
	memset((char *)b + BLK_HDR, 0, b->size - BLK_HDR);
	memset(b->tag, 0, sizeof(b->tag));
	b->req_size = 0;

	/* Coalesce with the next block, then with the previous one. */
	if (bo + b->size < heap_end(r) && blk(r, bo + b->size)->magic == BLK_FREE) {
		mpops_off_t nx = bo + b->size;

		free_unlink(r, nx);
		b->size += blk(r, nx)->size;
		memset(blk(r, nx), 0, BLK_HDR + sizeof(struct free_links));
		test_point("free.merged_next");
	}
	if (b->prev_size && blk(r, bo - b->prev_size)->magic == BLK_FREE) {
		mpops_off_t pv = bo - b->prev_size;

		free_unlink(r, pv);
		blk(r, pv)->size += b->size;
		memset(b, 0, BLK_HDR);
		bo = pv;
		b = blk(r, bo);
	}
	if (bo + b->size < heap_end(r)) {
		undo_save(r, bo + b->size);
		blk(r, bo + b->size)->prev_size = b->size;
	}
	free_push(r, bo);
	test_point("free.pushed");
	undo_end(a);
	shlock_unlock(&a->lock);
	return 0;
}

int mpops_alloc_stats(struct mpops_region *r, struct mpops_alloc_stats *st)
{
	struct alloc_shared *a;
	int rc;

	if (!r || !st)
		return -EINVAL;
	a = &r->hdr->alloc;
	if (!r->readonly && (rc = alloc_lock(r)) < 0)
		return rc;
	st->bytes_total = a->heap_size;
	st->bytes_used = a->bytes_used;
	st->objects = a->objects;
	st->free_blocks = a->free_blocks;
	if (!r->readonly)
		shlock_unlock(&a->lock);
	return 0;
}

int mpops_alloc_find(struct mpops_region *r, mpops_off_t off, mpops_off_t *start,
		     size_t *size, char *tag)
{
	mpops_off_t bo;
	int rc = -ENOENT, lk;

	if (!r)
		return -EINVAL;
	if (!r->readonly && (lk = alloc_lock(r)) < 0)
		return lk;
	bo = block_of(r, off);
	if (bo && off >= bo + BLK_HDR && blk(r, bo)->magic == BLK_USED) {
		if (start)
			*start = bo + BLK_HDR;
		if (size)
			*size = blk(r, bo)->req_size;
		if (tag)
			strlcpy(tag, blk(r, bo)->tag, MPOPS_NAME_MAX + 1);
		rc = 0;
	}
	if (!r->readonly)
		shlock_unlock(&r->hdr->alloc.lock);
	return rc;
}
