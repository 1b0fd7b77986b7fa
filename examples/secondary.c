/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-example-secondary: started by mpops-example, one per secondary.
 *
 *   mpops-example-secondary RUNDIR REGION RINGS
 *
 * A separate executable on purpose: its code sits at other addresses than
 * the primary's (a forked child would share them and hide the bug), and it
 * registered the doorbell implementations in the other order. It attaches,
 * resolves each queue's doorbell ID in its own tables, prints and reports
 * what it found, and rings every doorbell RINGS times. Exit 0 when all of
 * that worked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doorbell.h"

#define PROG "mpops-example-secondary"
/* Rings between two looks at the queue's slot (see ring_all()). */
#define BURST 32

/* Ask the primary for its eventfd of queue object @id: the reply carries
 * an fd of this process for the same eventfd. */
int queue_fd_get(struct mpops_region *r, mpops_obj_id_t id,
		 const struct queue_shared *q, int *fd)
{
	struct mpops_msg req = { .type = EXAMPLE_MSG_QUEUE_FD, .len = sizeof(id) };
	struct mpops_msg rep = { .len = 0 }; /* a request refused early leaves it as is */
	int rc;

	(void)q;
	*fd = -1;
	memcpy(req.data, &id, sizeof(id));
	rc = mpops_channel_request(r, &req, &rep, 0);
	if (rc == 0 && rep.nfds > 1)
		rc = -EBADMSG;
	if (rc == 0 && rep.nfds == 1) {
		*fd = rep.fds[0];
		rep.fds[0] = -1; /* taken: mpops_msg_clear() must not close it */
	}
	mpops_msg_clear(&rep);
	return rc;
}

static int queue_find(struct mpops_region *r, unsigned i, struct queue_shared **q)
{
	char name[MPOPS_NAME_MAX + 1];
	mpops_off_t off;
	void *p;
	int rc;

	snprintf(name, sizeof(name), QUEUE_ROOT_FMT, i);
	if ((rc = mpops_root_get(r, name, &off)) < 0) {
		fprintf(stderr, PROG ": region '%s' has no '%s'\n", mpops_region_name(r), name);
		return rc;
	}
	/* The offset comes from another process: check it before using it. */
	if ((rc = mpops_region_ptr(r, off, sizeof(**q), &p)) < 0)
		return rc;
	*q = p;
	return 0;
}

/* Tell the primary what this process resolved (see struct example_report). */
static int report(struct mpops_region *r, const struct queue_view *v)
{
	struct mpops_msg req = { .type = EXAMPLE_MSG_REPORT };
	struct mpops_msg rep = { .len = 0 }; /* a request refused early leaves it as is */
	struct example_report rp = {
		.queue = v->index,
		.ops_id = v->ops_id,
		.own = (uint16_t)v->own,
		.table = (uintptr_t)v->ops,
		.ring = v->ring,
	};
	int rc;

	memcpy(req.data, &rp, sizeof(rp));
	req.len = sizeof(rp);
	rc = mpops_channel_request(r, &req, &rep, 0);
	mpops_msg_clear(&rep);
	return rc;
}

/*
 * Ring each queue's doorbell @rings times through the hot-path accessor:
 * one indexed load from this process's table, no check. The slot is looked
 * up once per burst, not once per ring, yet often enough to follow the
 * owner if it reconfigures the queue (an epoch bump rebuilds the slot).
 */
static int ring_all(struct mpops_region *r, struct queue_shared **q, unsigned long rings)
{
	unsigned long done = 0;
	int rc;

	while (done < rings) {
		unsigned long n = rings - done < BURST ? rings - done : BURST;

		for (unsigned i = 0; i < QUEUES; i++) {
			void *slot;

			if ((rc = mpops_obj_slot(r, q[i]->obj_id, &slot)) < 0)
				return rc;
			for (unsigned long k = 0; k < n; k++) {
				rc = MPOPS_OPS(doorbell, q[i]->ops_id)->ring(q[i], slot);
				if (rc < 0) {
					fprintf(stderr, PROG ": pid %d: ringing queue %u failed: %s\n",
						(int)getpid(), i, strerror(-rc));
					return rc;
				}
			}
		}
		done += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	struct queue_shared *q[QUEUES];
	struct mpops_region *r;
	unsigned long rings;
	char *end;
	int rc, bad = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: " PROG " RUNDIR REGION RINGS (started by mpops-example)\n");
		return 2;
	}
	errno = 0;
	rings = strtoul(argv[3], &end, 10);
	if (errno || *end || end == argv[3]) {
		fprintf(stderr, PROG ": RINGS '%s' is not a number\n", argv[3]);
		return 2;
	}
	/* The rows go out in one write after both are printed, so the rows of
	 * two secondaries running at once do not interleave. */
	setvbuf(stdout, NULL, _IOFBF, BUFSIZ);

	ao.runtime_dir = argv[1];
	if ((rc = mpops_region_attach(argv[2], &ao, &r)) < 0) {
		fprintf(stderr, PROG ": cannot attach to region '%s' in %s: %s\n",
			argv[2], argv[1], strerror(-rc));
		return 1;
	}
	for (unsigned i = 0; i < QUEUES; i++) {
		struct queue_view v;

		if ((rc = queue_find(r, i, &q[i])) < 0)
			goto out;
		if ((rc = queue_view_get(q[i], &v)) < 0) {
			fprintf(stderr, PROG ": queue %u: ops ID %u does not resolve here: %s\n",
				i, q[i]->ops_id, strerror(-rc));
			goto out;
		}
		queue_view_print(stdout, "secondary", &v);
		bad |= !v.own;
		if ((rc = report(r, &v)) < 0) {
			fprintf(stderr, PROG ": cannot report to the primary: %s\n", strerror(-rc));
			goto out;
		}
	}
	fflush(stdout);
	rc = ring_all(r, q, rings);
out:
	fflush(stdout);
	mpops_region_detach(r);
	return rc < 0 || bad ? 1 : 0;
}
