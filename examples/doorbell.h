/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The quick-start example: queues in shared memory whose doorbell is an ops
 * class, referenced by ops ID, never by pointer.
 *
 * Every program compiles its own copy of the class (doorbell.c) and of the
 * two implementations (doorbell_eventfd.c, doorbell_counter.c); the
 * secondary links the implementations in the other order, so it registers
 * them the other way round, and still resolves the IDs the primary stored.
 */
#ifndef MPOPS_EXAMPLE_DOORBELL_H
#define MPOPS_EXAMPLE_DOORBELL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mpops/mpops.h>

/* Queue 0 rings an eventfd, queue 1 a counter. */
#define QUEUES 2
/* Each queue is published under this name with its index. */
#define QUEUE_ROOT_FMT "queue%u"

/*
 * A queue in shared memory: plain integers, IDs and nothing else, so every
 * process reads the same meaning from it.
 */
struct queue_shared {
	mpops_ops_id_t ops_id;		/* its doorbell implementation */
	uint16_t index;			/* 0..QUEUES-1 */
	mpops_obj_id_t obj_id;		/* the queue as an object: per-process slot */
	_Atomic uint64_t rings;		/* doorbells rung, by any process */
	_Atomic uint64_t failed;	/* rings that could not be delivered */
	uint64_t pad[5];
};
/* Its own cache line: processes ringing different queues do not contend. */
_Static_assert(sizeof(struct queue_shared) == 64, "queue_shared is one cache line");
_Static_assert(offsetof(struct queue_shared, obj_id) == 4, "queue_shared layout");
_Static_assert(offsetof(struct queue_shared, rings) == 8, "queue_shared layout");

/*
 * This process's slot of a queue object, built by the object's attach hook:
 * an fd means something in one process only, so it never goes in
 * struct queue_shared.
 */
struct queue_local {
	int efd;	/* this process's fd of the queue's eventfd, -1 if none */
};

/*
 * The doorbell ops class.
 *  - ring: tell whoever serves @q that there is work; 0 or -errno.
 *  - describe: what ringing does, into @buf; the snprintf() count.
 */
#define DOORBELL_OPS(OP)                                                     \
	OP(int, ring, (struct queue_shared *, struct queue_local *))         \
	OP(int, describe, (char * /* buf */, size_t /* len */))

MPOPS_OPS_CLASS_DECLARE(doorbell, DOORBELL_OPS)

extern const struct mpops_ops_impl mpops_impl_doorbell_eventfd;
extern const struct mpops_ops_impl mpops_impl_doorbell_counter;
/* The object class of queues (attach: get this process's eventfd fd). */
extern const struct mpops_ops_impl mpops_impl_mpops_obj_queue;

/*
 * How this process gets its own fd for the eventfd of queue @q (object
 * @id): each program defines it. The primary dups its eventfd; a secondary
 * asks the primary over the control channel. *fd is -1 when the queue has
 * no eventfd. @return 0 or -errno.
 */
int queue_fd_get(struct mpops_region *r, mpops_obj_id_t id,
		 const struct queue_shared *q, int *fd);

/* What one process resolved for one queue. */
struct queue_view {
	uint32_t index;
	mpops_ops_id_t ops_id;
	char impl[MPOPS_OPS_NAME_MAX + 1];
	const struct doorbell_ops *ops;	/* the table the ID resolved to */
	int own;			/* 1: it is this program's table */
	uintptr_t ring;			/* ops->ring in this process */
};

/*
 * Resolve @q's doorbell with the checked accessor and compare the result
 * with this program's own table of that name.
 * @return 0, or mpops_ops_resolve()'s error (logged).
 */
int queue_view_get(const struct queue_shared *q, struct queue_view *v);
/* One row of the example's table (queue_view_header() prints the title). */
void queue_view_header(FILE *out);
void queue_view_print(FILE *out, const char *who, const struct queue_view *v);

/* Control-channel requests the primary serves. */
enum {
	/* data: an mpops_obj_id_t; reply: the queue's eventfd, or no fd */
	EXAMPLE_MSG_QUEUE_FD = MPOPS_MSG_USER + 1,
	/* data: struct example_report; reply: status only */
	EXAMPLE_MSG_REPORT = MPOPS_MSG_USER + 2,
};

/*
 * What a secondary resolved, sent to the primary so it can print the two
 * processes' addresses side by side. Addresses travel in a message, which
 * is private to the receiver: in shared memory they would be the very bug
 * this example is about.
 */
struct example_report {
	uint32_t queue;
	mpops_ops_id_t ops_id;
	uint16_t own;
	uint64_t table;		/* the resolved table, in the sender */
	uint64_t ring;		/* its ring(), in the sender */
};

#endif
