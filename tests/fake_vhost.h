/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A scripted vhost-user backend for driver tests, run on a thread of the
 * test: it speaks just enough of the protocol for a frontend to start, and
 * can misbehave on purpose. It never touches the rings: a test that wants
 * a device writing used entries writes them itself, through its own
 * mapping of the shared memory, as a device would.
 */
#ifndef MPOPS_TEST_FAKE_VHOST_H
#define MPOPS_TEST_FAKE_VHOST_H

#include <pthread.h>
#include <stdint.h>

enum fake_mode {
	FAKE_OK,		/* answer everything properly */
	FAKE_GARBAGE,		/* a reply to GET_FEATURES with the wrong request code */
	FAKE_CLOSE_EARLY,	/* hang up on GET_FEATURES */
	FAKE_HANGUP_LATER,	/* after fake_hangup(), close the session */
};

struct fake_vhost {
	char path[108];
	enum fake_mode mode;
	uint64_t features;	/* offered */
	uint64_t queues;	/* GET_QUEUE_NUM; 0 = no MQ protocol feature */
	int client;		/* connect to the frontend instead of listening */
	/* what it saw */
	int sessions;
	int requests[64];	/* count per request code */
	int kickfd[32];
	uint64_t acked_features;
	/* the last SET_MEM_TABLE: its one region, and the fd's size; the
	 * fd is mapped at mem (mem_len bytes) for the test to play the
	 * device, as a backend would, and searched for the region's magic */
	uint32_t mem_nregions;
	uint64_t mem_gpa, mem_size, mem_uaddr, mem_mmap_off, mem_fd_size;
	void *mem;
	size_t mem_len;
	int mem_magic_seen;
	/* internals */
	int listen_fd, conn_fd, stop;
	pthread_t thr;
	pthread_mutex_t mu;
};

int fake_vhost_start(struct fake_vhost *f);
/* Close the current session (the backend "exits"); it accepts the next. */
void fake_vhost_hangup(struct fake_vhost *f);
void fake_vhost_stop(struct fake_vhost *f);

#endif
