/* SPDX-License-Identifier: BSD-3-Clause */
/* The region's shared layout and its per-process handle. Never installed. */
#ifndef MPOPS_LIB_REGION_PRIV_H
#define MPOPS_LIB_REGION_PRIV_H

#include <stdatomic.h>
#include <stddef.h>

#include <mpops/channel.h>
#include <mpops/obj.h>
#include <mpops/proc.h>
#include <mpops/region.h>

#include "priv.h"

#define REGION_MAGIC 0x4e4752534f50504dULL /* "MPPOSRGN" little-endian */

enum region_state {
	REGION_INIT = 0,
	REGION_READY = 1,
	REGION_DEAD = 2,
};

struct root_shared {
	char name[MPOPS_NAME_MAX + 1];
	mpops_off_t off;
	uint64_t pad[3];
};
_Static_assert(sizeof(struct root_shared) == 64, "root layout");

/* Entries of the allocator's undo log: blocks one call may touch. */
#define ALLOC_UNDO_MAX 16
/* Bytes saved per block: its header and its free-list links. */
#define ALLOC_UNDO_BYTES 80

/*
 * What one allocator call is changing, saved before it changes it: a
 * process that dies inside leaves this log, and the next locker puts every
 * saved byte back (alloc.c). An entry counts once n covers it; n is
 * written after the entry's bytes.
 */
struct alloc_undo_shared {
	uint32_t active;	/* a call is changing the heap */
	uint32_t n;		/* entries saved */
	mpops_off_t free_head;	/* the allocator's fields before the call */
	uint64_t bytes_used;
	uint32_t objects;
	uint32_t free_blocks;
	uint64_t repairs;	/* calls undone after their process died */
	uint64_t pad[3];
	struct {
		mpops_off_t off;
		uint64_t pad;
		uint8_t bytes[ALLOC_UNDO_BYTES];
	} e[ALLOC_UNDO_MAX];
};
_Static_assert(sizeof(struct alloc_undo_shared) == 64 + 96 * ALLOC_UNDO_MAX, "undo layout");

/* Allocator state: a first-fit free list of offset-linked blocks. */
struct alloc_shared {
	struct shlock lock;
	mpops_off_t heap_off;	/* first block */
	uint64_t heap_size;
	mpops_off_t free_head;	/* first free block, 0 = none */
	uint64_t bytes_used;
	uint32_t objects;
	uint32_t free_blocks;
	uint64_t pad[3];
	struct alloc_undo_shared undo;
};
_Static_assert(sizeof(struct alloc_shared) % 64 == 0, "alloc layout");
_Static_assert(offsetof(struct alloc_shared, undo) == 128, "alloc layout");

/*
 * Allocator of the device part: a table of extents covering it in offset
 * order, each used or free. The table sits in the host part, so a device
 * that writes all over its memory cannot corrupt it. A call copies the
 * table to the undo copy first; the next locker after a death copies it
 * back.
 */
#define DEVHEAP_MAX 256

struct devblk_shared {
	mpops_off_t off;
	uint64_t size;
	uint64_t req_size;	/* bytes the caller asked for, 0 = free */
	uint32_t used;
	uint32_t pad;
	char tag[MPOPS_NAME_MAX + 1];
};
_Static_assert(sizeof(struct devblk_shared) == 64, "device block layout");

struct devheap_table {
	uint32_t n;		/* extents */
	uint32_t objects;
	uint64_t bytes_used;
	uint64_t pad[6];
	struct devblk_shared e[DEVHEAP_MAX];
};

struct devheap_shared {
	struct shlock lock;
	mpops_off_t off;	/* the device part */
	uint64_t size;
	uint32_t active;	/* a call is changing the table */
	uint32_t pad0;
	uint64_t repairs;
	uint64_t pad[4];
	struct devheap_table t;
	struct devheap_table undo;
};
_Static_assert(sizeof(struct devheap_shared) % 64 == 0, "device heap layout");

struct region_hdr_shared {
	uint64_t magic;
	uint32_t abi_version;
	uint32_t hdr_size;
	uint64_t layout_hash;
	uint64_t size;
	_Atomic uint32_t state;		/* enum region_state */
	int32_t primary_pid;
	uint64_t primary_start_time;
	char name[MPOPS_NAME_MAX + 1];
	uint8_t primary_build_id[MPOPS_BUILD_ID_MAX];
	uint32_t primary_build_id_len;
	uint32_t backing;
	mpops_off_t ops_table_off;
	mpops_off_t proc_table_off;
	mpops_off_t obj_table_off;
	uint32_t iova_mode;		/* enum mpops_iova_mode */
	uint32_t iova_page_shift;	/* MPOPS_IOVA_PA: log2 of the page size */
	mpops_off_t iova_table_off;	/* MPOPS_IOVA_PA: uint64_t address per page
					   of the device part, from dev_off */
	/* The device part: [dev_off, dev_off + dev_size), a second memory
	 * object mapped right after the first, the only memory a device is
	 * given. Its allocator's table lives in the first part (devheap_off),
	 * where no device writes. */
	mpops_off_t dev_off;
	uint64_t dev_size;
	mpops_off_t devheap_off;
	uint64_t pad0;
	struct shlock roots_lock;
	struct root_shared roots[MPOPS_ROOTS_MAX];
	struct alloc_shared alloc;
};
_Static_assert(offsetof(struct region_hdr_shared, roots_lock) % 64 == 0,
	       "header lock alignment");
_Static_assert(sizeof(struct region_hdr_shared) % 64 == 0, "header size");

/* Process table. */
enum proc_state { PROC_FREE = 0, PROC_LIVE = 1 };

struct proc_entry_shared {
	int32_t pid;
	uint32_t role;
	uint64_t start_time;
	uint32_t state;
	uint32_t build_id_len;
	uint8_t build_id[MPOPS_BUILD_ID_MAX];
	char exe[256];
	uint64_t pad[3];
};
_Static_assert(sizeof(struct proc_entry_shared) == 336, "proc entry layout");

struct proc_table_shared {
	struct shlock lock;
	uint32_t capacity;
	uint32_t live;
	uint64_t pad[7];
	struct proc_entry_shared e[MPOPS_PROC_MAX];
};

/* Object table. */
enum obj_state { OBJ_FREE = 0, OBJ_LIVE = 1 };

struct obj_entry_shared {
	_Atomic uint32_t gen;		/* generation of the current/last object */
	_Atomic uint32_t state;
	_Atomic uint32_t epoch;
	uint16_t cls_id;
	uint16_t pad0;
	mpops_off_t shared;
	int32_t owner_pid;
	uint32_t pad1;
	char name[MPOPS_NAME_MAX + 1];
};
_Static_assert(sizeof(struct obj_entry_shared) == 64, "obj entry layout");

struct obj_table_shared {
	struct shlock lock;
	uint32_t capacity;
	uint32_t pad[15];
	struct obj_entry_shared e[MPOPS_OBJ_MAX];
};

/* ---- per-process handle ------------------------------------------------ */

struct obj_slot_local {
	mpops_obj_id_t id;	/* object the slot was built for */
	uint32_t epoch;		/* epoch it was built at */
	void *slot;		/* what the attach hook returned */
	mpops_off_t shared;	/* the object's data, for the detach hook */
	mpops_ops_id_t cls_id;	/* its class: the index may be reused meanwhile */
	int built;
};

#define CHAN_HANDLERS_MAX 64
#define PROC_EXIT_CB_MAX 16

struct chan_handler {
	uint32_t type;
	mpops_channel_handler fn;
	void *arg;
};

/* Cases the channel thread logs once per peer (see note_due() in channel.c). */
enum chan_note {
	NOTE_REFUSED,		/* other uid */
	NOTE_NO_HELLO,		/* no hand-shake in time */
	NOTE_SLOW,		/* a request's records not all sent in time */
	NOTE_FDS,		/* a request announcing too many fds */
	NOTE_NO_READ,		/* replies not read in time */
	NOTE_FULL,		/* at the connection limit or out of fds: shedding */
	NOTE_ACCEPT,		/* accept fails: backing off */
	NOTE_POLL,		/* poll fails: backing off */
	NOTE_MAX
};

/*
 * One connection to the primary's channel thread, which never blocks on it:
 * a request is assembled record by record as they arrive, a reply the peer
 * has no room for waits here (and the peer's next requests with it).
 */
struct chan_client {
	int fd;
	int32_t pid;
	uint64_t start_time;	/* from its hand-shake */
	int refused;		/* failed the credential check: answer, then drop */
	int attached;		/* its hand-shake succeeded */
	int64_t since_ms;	/* accepted at (CLOCK_MONOTONIC) */
	/* a request being received: its first record came, fds may follow */
	struct mpops_msg *in;
	uint32_t in_seq, in_nfds;
	int64_t in_due;
	/* a reply being sent: records before out_next went out */
	struct mpops_msg *out;
	uint32_t out_seq;
	unsigned out_next;
	int64_t out_due;	/* 0 until a record found no room */
};

struct region_exit_cb {
	mpops_primary_exit_fn fn;
	void *arg;
};

struct mpops_region {
	char name[MPOPS_NAME_MAX + 1];
	char rundir[108];
	enum mpops_role role;
	int readonly;
	int fd;				/* the host part's memory */
	int dev_fd;			/* the device part's memory */
	void *base;
	size_t size;			/* both parts */
	size_t dev_off, dev_size;	/* the device part */
	size_t map_size;		/* bytes reserved at base (>= size) */
	struct region_hdr_shared *hdr;
	struct proc_table_shared *procs;
	struct obj_table_shared *objs;
	void *ops_table;
	int ops_bound;
	int32_t primary_pid;
	/* Who may be at the other end of the control channel besides our uid
	 * and root: members of group @gid (MPOPS_REGION_F_GROUP on create,
	 * MPOPS_ATTACH_F_GROUP on attach). */
	int group_ok;
	uint32_t gid;

	/* per-process object slots */
	pthread_mutex_t slots_mu;
	struct obj_slot_local *slots;	/* MPOPS_OBJ_MAX */

	/* primary: lock file, control socket, service thread */
	struct pidfh *pidfh;
	char lock_path[160];
	char sock_path[160];
	int listen_fd;
	int stop_fd[2];
	pthread_t thread;
	int thread_running;
	_Atomic int thread_stop;	/* seen even when poll() fails */
	pthread_mutex_t chan_mu;	/* handlers, exit callbacks */
	struct chan_handler handlers[CHAN_HANDLERS_MAX];
	struct {
		mpops_proc_exit_fn fn;
		void *arg;
	} exit_cbs[PROC_EXIT_CB_MAX];
	struct chan_client *clients;
	unsigned nclients;
	int spare_fd;			/* given up to accept when out of fds */
	int64_t accept_resume_ms;	/* accept paused until then (0: not) */
	struct { int32_t pid; int64_t at_ms; } notes[NOTE_MAX];

	/* port.c: this process's open ports of the region */
	pthread_mutex_t ports_mu;
	struct mpops_port *ports;
	int ports_served;		/* primary: fd handler and exit callback registered */

	/* secondary: connection to the primary */
	int conn_fd;
	pthread_mutex_t req_mu;
	uint32_t seq;
	_Atomic int primary_gone;

	/* secondary: the thread that waits for the primary's end to hang up
	 * (channel.c), and what it tells (region.c). primary_cbs under exit_mu. */
	pthread_t watch_thread;
	int watch_running;
	int watch_stop[2];
	int exit_fd;			/* eventfd, readable once the primary is gone */
	/* The port layer's hook, run before the callbacks: its ports in this
	 * process stop bursting and report link down. Set by port.c. */
	void (*ports_primary_gone)(struct mpops_region *r);
	pthread_mutex_t exit_mu;
	unsigned nprimary_cbs;
	struct region_exit_cb primary_cbs[MPOPS_PRIMARY_EXIT_CB_MAX];
};

/* region.c */
uint64_t region_layout_hash(void);

/* region.c: -EROFS with a log line on a read-only attach */
int region_writable(struct mpops_region *r, const char *what);
/* Mark the primary gone (logs once); returns -ENOTCONN. */
int region_primary_lost(struct mpops_region *r);
/* The primary's end hung up (channel.c's watcher): mark it gone, signal
 * the exit fd, run the port layer's hook, then the callbacks. */
void region_primary_exited(struct mpops_region *r);

/* iova.c: record the pages' physical addresses (primary, at create) */
int region_iova_init(struct mpops_region *r, const struct mpops_region_opts *o);

/* alloc.c */
void alloc_init(struct alloc_shared *a, mpops_off_t heap_off, uint64_t heap_size);
/* The device part's allocator, in the host part (primary, at create). */
int devheap_init(struct mpops_region *r);

/* proc.c */
int proc_table_init(struct mpops_region *r);
int proc_register(struct mpops_region *r, enum mpops_role role);
void proc_unregister(struct mpops_region *r, int32_t pid, uint64_t start_time);
/* A secondary's connection closed: reclaim its entry if it did not detach
 * (it died) and run the exit callbacks (primary). */
void proc_gone(struct mpops_region *r, int32_t pid, uint64_t start_time);
int proc_read_exe(char *buf, size_t len);

/* obj.c */
int obj_table_init(struct mpops_region *r);
int obj_slots_init(struct mpops_region *r);
void obj_slots_release_all(struct mpops_region *r);

/* channel.c */
int chan_listen(struct mpops_region *r, unsigned mode);
void chan_stop(struct mpops_region *r);
/* Secondary: connect, hand-shake and receive the region's two fds
 * (host part, device part). */
struct hello_reply;
int chan_connect(struct mpops_region *r, int timeout_ms, int region_fd[2],
		 struct hello_reply *info);
void chan_close(struct mpops_region *r);
/* Secondary: start / stop the thread that waits for the primary's end of
 * the connection to hang up (then region_primary_exited()). */
int chan_watch_start(struct mpops_region *r);
int chan_watch_stop(struct mpops_region *r);

/* What the primary tells a secondary in the hand-shake. */
struct hello_req {
	uint32_t abi_version;
	uint32_t flags;
	uint64_t layout_hash;
	uint64_t start_time;
};

struct hello_reply {
	uint32_t abi_version;
	uint32_t backing;
	uint64_t layout_hash;
	uint64_t size;
	int32_t primary_pid;
	uint32_t pad;
};

/* Built-in message types. */
enum {
	MSG_HELLO = 1,
	MSG_PING = 2,
	MSG_PORT_FDS = 3,	/* port.c: a port driver's fds for a process */
};

/* channel.c: register a handler for a built-in type (no range check). */
int chan_register(struct mpops_region *r, uint32_t type, mpops_channel_handler fn, void *arg);

#endif
