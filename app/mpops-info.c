/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-info: attach read-only to a region and print what this process
 * registers and resolves, the region header and the attached processes.
 * Without a region name, print only this process's registrations.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpops/mpops.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mpops-info [--json] [--runtime-dir DIR] [REGION]\n"
		"  Print the ops classes and implementations this process registers\n"
		"  (ID, signature, local address and symbol) and, with REGION, the\n"
		"  region header, the name table and the attached processes.\n"
		"  --json             one JSON object\n"
		"  --runtime-dir DIR  where the region's socket is (default: see README)\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .flags = MPOPS_ATTACH_F_READONLY };
	struct mpops_region *r = NULL;
	unsigned flags = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jd:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': flags |= MPOPS_INFO_F_JSON; break;
		case 'd': ao.runtime_dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return 2;
	}
	if (optind < argc) {
		rc = mpops_region_attach(argv[optind], &ao, &r);
		if (rc < 0) {
			fprintf(stderr, "mpops-info: cannot attach to region '%s': %s\n",
				argv[optind], strerror(-rc));
			return 1;
		}
	}
	rc = mpops_info_print(r, stdout, flags);
	if (r)
		mpops_region_detach(r);
	return rc < 0 ? 1 : 0;
}
