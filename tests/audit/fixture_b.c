/* SPDX-License-Identifier: BSD-3-Clause */
/* The fixture's types in DWARF (fixture.h): the other unit. */
#include "fixture.h"

struct fx_wrap_shared fx_wrap;
struct fx_clean_shared fx_clean;
struct fx_dev_local fx_local;

/* fx_dev_shared again, in this unit's DWARF too. */
int fx_dev_up(const struct fx_dev_shared *d)
{
	return d->st == FX_UP;
}
