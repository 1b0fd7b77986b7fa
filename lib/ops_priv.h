/* SPDX-License-Identifier: BSD-3-Clause */
/* The ops registry's shared name table. Never installed. */
#ifndef MPOPS_LIB_OPS_PRIV_H
#define MPOPS_LIB_OPS_PRIV_H

#include <stdatomic.h>

#include <mpops/ops.h>

#include "priv.h"

#define OPS_TABLE_MAGIC 0x5342544f50504dULL /* "MPPOTBS" */
#define OPS_TABLE_VERSION 1

enum ops_entry_state { OPS_ENTRY_FREE = 0, OPS_ENTRY_VALID = 1 };

struct ops_entry_shared {
	char cls[MPOPS_OPS_NAME_MAX + 1];
	char impl[MPOPS_OPS_NAME_MAX + 1];
	uint64_t sig_hash;	/* hash of class name, member list and size */
	uint32_t ops_size;
	_Atomic uint32_t state;
	int32_t first_pid;	/* process that appended it */
	uint32_t pad[7];
};
_Static_assert(sizeof(struct ops_entry_shared) == 112, "ops entry layout");

struct ops_table_shared {
	uint64_t magic;
	uint32_t version;
	uint32_t capacity;
	_Atomic uint32_t count;	/* entries 0..count-1 are published; 0 is reserved */
	uint32_t pad[11];
	struct shlock lock;
	struct ops_entry_shared e[MPOPS_OPS_MAX];
};

uint64_t ops_layout_hash(uint64_t h);

/* For introspection: the bound table (or NULL) and the local registrations. */
const struct ops_table_shared *ops_bound_table(void);
unsigned ops_local_classes(const struct mpops_ops_class **out, uint64_t *hash,
			   unsigned max);
unsigned ops_local_impls(const struct mpops_ops_impl **out, mpops_ops_id_t *ids,
			 unsigned max);
uint64_t ops_class_hash(const struct mpops_ops_class *cls);

#endif
