/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The doorbell class and the queue object class, compiled into each
 * program. The doorbell implementations live in their own files so the
 * programs can link (and so register) them in different orders.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doorbell.h"

MPOPS_OPS_CLASS_DEFINE(doorbell, DOORBELL_OPS)

/* ==== the queue object: a per-process slot for the eventfd ============== */

static int queue_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared,
			void **slot)
{
	struct queue_local *l = malloc(sizeof(*l));
	int rc;

	if (!l)
		return -ENOMEM;
	rc = queue_fd_get(r, id, shared, &l->efd);
	if (rc < 0) {
		free(l);
		return rc;
	}
	*slot = l;
	return 0;
}

static int queue_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared,
			void *slot)
{
	struct queue_local *l = slot;

	(void)r;
	(void)id;
	(void)shared;
	if (l->efd >= 0)
		close(l->efd);
	free(l);
	return 0;
}

static const struct mpops_obj_ops queue_obj_ops = {
	.attach = queue_attach,
	.detach = queue_detach,
};
MPOPS_OPS_IMPL(mpops_obj, queue, &queue_obj_ops)

/* ==== what a process resolved =========================================== */

/* This program's table of doorbell implementation @impl, or NULL. */
static const struct doorbell_ops *own_table(const char *impl)
{
	const struct mpops_ops_impl *mine[] = {
		&mpops_impl_doorbell_eventfd,
		&mpops_impl_doorbell_counter,
	};

	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		if (strcmp(mine[i]->name, impl) == 0)
			return mine[i]->ops;
	return NULL;
}

int queue_view_get(const struct queue_shared *q, struct queue_view *v)
{
	char cls[MPOPS_OPS_NAME_MAX + 1];
	int rc;

	memset(v, 0, sizeof(*v));
	v->index = q->index;
	v->ops_id = q->ops_id;
	/* Checked once here; the ring loop then uses the unchecked accessor. */
	rc = mpops_ops_resolve_doorbell(q->ops_id, &v->ops);
	if (rc < 0) {
		strcpy(v->impl, "?");
		return rc;
	}
	mpops_ops_name(q->ops_id, cls, v->impl);
	v->own = v->ops == own_table(v->impl);
	v->ring = (uintptr_t)v->ops->ring;
	return 0;
}

void queue_view_header(FILE *out)
{
	fprintf(out, "%-9s %6s %5s %6s  %-16s  %-14s  %-3s  %s\n",
		"process", "pid", "queue", "ops ID", "doorbell", "ops table", "own", "ring()");
}

void queue_view_print(FILE *out, const char *who, const struct queue_view *v)
{
	char impl[MPOPS_OPS_NAME_MAX + 16];

	snprintf(impl, sizeof(impl), "doorbell/%s", v->impl);
	fprintf(out, "%-9s %6d %5" PRIu32 " %6u  %-16s  %#14" PRIxPTR "  %-3s  %#" PRIxPTR "\n",
		who, (int)getpid(), v->index, v->ops_id, impl,
		(uintptr_t)v->ops, v->own ? "yes" : "NO", v->ring);
}
