/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-audit-types: the static audit of shared types. Reads the DWARF of a
 * built object, archive, library or executable (libdw, elfutils) and, for
 * every struct or union whose name ends in "_shared" and every type it
 * holds by value (nested structs, unions, arrays, typedefs), lists each
 * member that is a data pointer, a function pointer or a process-local
 * integer, with the path of members that reaches it and where it is
 * declared. Exceptions are read from the file's "mpops_audit_allow" section
 * (MPOPS_AUDIT_ALLOW, include/mpops/audit.h) and printed as allowed.
 * doc/audit.md says what it checks and how to use it.
 */
#include <ar.h>
#include <ctype.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "mpops-audit-types"
#define ALLOW_SECTION "mpops_audit_allow"
#define ALLOW_MAGIC "mpops-audit-allow"

/* Exit status. */
enum { EXIT_CLEAN = 0, EXIT_FINDINGS = 1, EXIT_BAD_INPUT = 2 };

#define PATH_MAX_LEN 1024
#define TYPE_MAX_LEN 256
#define CHAIN_MAX 64

enum kind { K_POINTER, K_FUNCTION_POINTER, K_LOCAL_INT };

static const char *const kind_names[] = {
	[K_POINTER] = "pointer",
	[K_FUNCTION_POINTER] = "function pointer",
	[K_LOCAL_INT] = "process-local integer",
};

/* Typedefs of integers that mean something in one process only. */
static const char *const builtin_local_types[] = {
	"mpops_fd_t",	/* include/mpops/audit.h */
	"pthread_t",	/* a thread of this process */
	"uintptr_t",	/* an address kept as an integer */
	"intptr_t",
};

struct allow {
	char *type;	/* tag or typedef name, without "struct " */
	char *member;	/* dotted path, array indices removed */
	char *reason;
};

struct finding {
	char *root;
	char *path;
	enum kind kind;
	char *type;		/* C spelling of the member's type */
	char *why;		/* for a process-local integer: the typedef or the name */
	char *decl_file;
	int decl_line;
	const struct allow *allowed;
	char *allowed_by;	/* "type.member" of the allow record */
};

/* A named struct or union the walk is inside, and where its members start
 * in the path: allow records match relative to it. */
struct chain_entry {
	const char *name[2];	/* tag and typedef name, either may be NULL */
	size_t off;
};

/* Everything about one audited file. */
struct audit {
	const char *file;
	struct allow *allows;
	size_t n_allows;
	char **roots;		/* "name\tfile\tline\tsize" of each root walked */
	size_t n_roots;
	struct finding *f;
	size_t n_f;
	/* the walk */
	const char *root;
	char path[PATH_MAX_LEN];
	struct chain_entry chain[CHAIN_MAX];
	unsigned depth;
};

static const char **extra_local_types;
static size_t n_extra_local_types;
static const char **extra_roots;
static size_t n_extra_roots;

/* ---- small helpers ------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(EXIT_BAD_INPUT);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xrealloc(NULL, n), s, n);
}

/* Append to a NUL-terminated string in a buffer of @size bytes (truncates). */
static void cat(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cat(char *dst, size_t size, const char *fmt, ...)
{
	size_t len = strlen(dst);
	va_list ap;

	if (len + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(dst + len, size - len, fmt, ap);
	va_end(ap);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* @src without array indices ("vq[3].desc" -> "vq.desc") into @dst. */
static void strip_indices(char *dst, size_t size, const char *src)
{
	size_t n = 0;
	int depth = 0;

	for (; *src && n + 1 < size; src++) {
		if (*src == '[')
			depth++;
		else if (*src == ']')
			depth--;
		else if (depth == 0 && !isspace((unsigned char)*src))
			dst[n++] = *src;
	}
	dst[n] = '\0';
}

/* "struct foo" / "union foo" / " foo " -> "foo" */
static char *type_key(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, "struct ", 7) == 0)
		s += 7;
	else if (strncmp(s, "union ", 6) == 0)
		s += 6;
	while (isspace((unsigned char)*s))
		s++;
	char *k = xstrdup(s);
	size_t n = strlen(k);

	while (n && isspace((unsigned char)k[n - 1]))
		k[--n] = '\0';
	return k;
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

/* A root: named *_shared, or given with --root. */
static bool is_root_name(const char *name)
{
	return name && (ends_with(name, "_shared") || in_list(name, extra_roots, n_extra_roots));
}

static bool is_local_typedef(const char *name)
{
	return in_list(name, builtin_local_types,
		       sizeof(builtin_local_types) / sizeof(builtin_local_types[0])) ||
	       in_list(name, extra_local_types, n_extra_local_types);
}

/* The documented name pattern of an fd: the member's name ends in "fd" or
 * "fds" (fd, kickfd, dev_fd, kick_fds), in either case. */
static bool is_fd_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n >= 3 && strcasecmp(name + n - 3, "fds") == 0)
		return true;
	return n >= 2 && strcasecmp(name + n - 2, "fd") == 0;
}

/* ---- DWARF types -------------------------------------------------------- */

/* The type a DIE refers to; false for none (void). */
static bool die_type(Dwarf_Die *die, Dwarf_Die *out)
{
	Dwarf_Attribute a;

	return dwarf_attr_integrate(die, DW_AT_type, &a) && dwarf_formref_die(&a, out);
}

static bool is_qualifier(int tag)
{
	return tag == DW_TAG_const_type || tag == DW_TAG_volatile_type ||
	       tag == DW_TAG_restrict_type || tag == DW_TAG_atomic_type;
}

/* C spelling of a type, appended to @b: enough to recognise it. */
static void type_str(Dwarf_Die *t, char *b, size_t size)
{
	Dwarf_Die inner, p;
	const char *name;
	int tag;

	if (!t) {
		cat(b, size, "void");
		return;
	}
	tag = dwarf_tag(t);
	name = dwarf_diename(t);
	switch (tag) {
	case DW_TAG_structure_type:
		cat(b, size, "struct %s", name ? name : "<anonymous>");
		return;
	case DW_TAG_union_type:
		cat(b, size, "union %s", name ? name : "<anonymous>");
		return;
	case DW_TAG_enumeration_type:
		cat(b, size, "enum %s", name ? name : "<anonymous>");
		return;
	case DW_TAG_const_type:
	case DW_TAG_volatile_type:
	case DW_TAG_atomic_type:
	case DW_TAG_restrict_type: {
		const char *q = tag == DW_TAG_const_type ? "const" :
				tag == DW_TAG_volatile_type ? "volatile" :
				tag == DW_TAG_atomic_type ? "_Atomic" : "restrict";
		bool has = die_type(t, &inner);

		if (has && dwarf_tag(&inner) == DW_TAG_pointer_type) {
			type_str(&inner, b, size);
			cat(b, size, " %s", q);
		} else {
			cat(b, size, "%s ", q);
			type_str(has ? &inner : NULL, b, size);
		}
		return;
	}
	case DW_TAG_pointer_type:
		if (die_type(t, &inner) && dwarf_tag(&inner) == DW_TAG_subroutine_type) {
			bool first = true, has_ret = die_type(&inner, &p);

			type_str(has_ret ? &p : NULL, b, size);
			cat(b, size, " (*)(");
			if (dwarf_child(&inner, &p) == 0) {
				do {
					if (dwarf_tag(&p) == DW_TAG_formal_parameter) {
						Dwarf_Die pt;

						cat(b, size, first ? "" : ", ");
						type_str(die_type(&p, &pt) ? &pt : NULL, b, size);
						first = false;
					} else if (dwarf_tag(&p) == DW_TAG_unspecified_parameters) {
						cat(b, size, first ? "..." : ", ...");
						first = false;
					}
				} while (dwarf_siblingof(&p, &p) == 0);
			}
			cat(b, size, first ? "void)" : ")");
			return;
		}
		type_str(die_type(t, &inner) ? &inner : NULL, b, size);
		cat(b, size, " *");
		return;
	case DW_TAG_array_type:
		type_str(die_type(t, &inner) ? &inner : NULL, b, size);
		cat(b, size, "[]");
		return;
	default:
		cat(b, size, "%s", name ? name : "<type>");
		return;
	}
}

/* Number of elements of one DW_TAG_subrange_type, or -1 (flexible). */
static long long subrange_count(Dwarf_Die *sr)
{
	Dwarf_Attribute a;
	Dwarf_Word w;

	if (dwarf_attr_integrate(sr, DW_AT_count, &a) && dwarf_formudata(&a, &w) == 0)
		return (long long)w;
	if (dwarf_attr_integrate(sr, DW_AT_upper_bound, &a) && dwarf_formudata(&a, &w) == 0)
		return (long long)w + 1;
	return -1;
}

/* ---- findings and exceptions -------------------------------------------- */

/* The allow record that covers the member at the current path, if any: a
 * record (T, M) matches when the walk is inside a type named T and the
 * path from there, without indices, is M or lies inside M. */
static const struct allow *find_allow(struct audit *a, char *by, size_t by_size)
{
	char rel[PATH_MAX_LEN];
	unsigned d, k;
	size_t i, m;

	for (d = 0; d < a->depth; d++) {
		const struct chain_entry *e = &a->chain[d];
		const char *r = a->path + e->off;

		if (*r == '.')
			r++;
		strip_indices(rel, sizeof(rel), r);
		for (k = 0; k < 2; k++) {
			if (!e->name[k])
				continue;
			for (i = 0; i < a->n_allows; i++) {
				const struct allow *al = &a->allows[i];

				if (strcmp(al->type, e->name[k]) != 0)
					continue;
				m = strlen(al->member);
				if (strncmp(rel, al->member, m) == 0 &&
				    (rel[m] == '\0' || rel[m] == '.')) {
					snprintf(by, by_size, "%s.%s", al->type, al->member);
					return al;
				}
			}
		}
	}
	return NULL;
}

static void add_finding(struct audit *a, enum kind kind, Dwarf_Die *type, const char *why,
			Dwarf_Die *decl)
{
	char tbuf[TYPE_MAX_LEN] = "", by[PATH_MAX_LEN] = "";
	struct finding *f;
	const char *file = decl ? dwarf_decl_file(decl) : NULL;
	int line = 0;

	if (decl)
		dwarf_decl_line(decl, &line);
	type_str(type, tbuf, sizeof(tbuf));
	a->f = xrealloc(a->f, (a->n_f + 1) * sizeof(*a->f));
	f = &a->f[a->n_f++];
	*f = (struct finding){
		.root = xstrdup(a->root),
		.path = xstrdup(a->path),
		.kind = kind,
		.type = xstrdup(tbuf),
		.why = why ? xstrdup(why) : NULL,
		.decl_file = xstrdup(file ? file : "?"),
		.decl_line = line,
	};
	f->allowed = find_allow(a, by, sizeof(by));
	f->allowed_by = f->allowed ? xstrdup(by) : NULL;
}

/* Parse the allow records of one ELF file's section. @return 0, -EINVAL
 * (malformed: logged). */
static int read_allows(struct audit *a, Elf *elf)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return 0;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ALLOW_SECTION) != 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf)
			continue;
		const char *p = d->d_buf, *end = p + d->d_size;

		while (p < end) {
			const char *s[4];
			int k;

			if (*p == '\0') {	/* alignment between records */
				p++;
				continue;
			}
			for (k = 0; k < 4; k++) {
				const char *z = memchr(p, '\0', end - p);

				if (!z)
					break;
				s[k] = p;
				p = z + 1;
			}
			if (k < 4 || strcmp(s[0], ALLOW_MAGIC) != 0) {
				fprintf(stderr, PROG ": %s: malformed record in section " ALLOW_SECTION
					": rebuild with the current <mpops/audit.h> (MPOPS_AUDIT_ALLOW)\n",
					a->file);
				return -EINVAL;
			}
			char *type = type_key(s[1]), mem[PATH_MAX_LEN];
			size_t i;

			strip_indices(mem, sizeof(mem), s[2]);
			for (i = 0; i < a->n_allows; i++)
				if (strcmp(a->allows[i].type, type) == 0 &&
				    strcmp(a->allows[i].member, mem) == 0)
					break;
			if (i < a->n_allows) {	/* the same header in another unit */
				free(type);
				continue;
			}
			a->allows = xrealloc(a->allows, (a->n_allows + 1) * sizeof(*a->allows));
			a->allows[a->n_allows++] = (struct allow){
				.type = type, .member = xstrdup(mem), .reason = xstrdup(s[3]),
			};
		}
	}
	return 0;
}

/* ---- the walk ----------------------------------------------------------- */

static void visit_struct(struct audit *a, Dwarf_Die *t, const char *tdname);

/*
 * One member's type at the current path. @mname is the name of the member
 * that declared it (for the fd name pattern), @decl its DIE.
 */
static void visit_type(struct audit *a, Dwarf_Die *type, const char *mname, Dwarf_Die *decl)
{
	Dwarf_Die t = *type, inner;
	const char *local = NULL, *tdname = NULL;
	char why[TYPE_MAX_LEN];
	size_t plen = strlen(a->path);
	int tag;

	/* Through typedefs and qualifiers, noting the typedef names. */
	for (;;) {
		tag = dwarf_tag(&t);
		if (tag == DW_TAG_typedef) {
			const char *n = dwarf_diename(&t);

			if (n && !local && is_local_typedef(n))
				local = n;
			if (n && !tdname)
				tdname = n;
		} else if (!is_qualifier(tag)) {
			break;
		}
		if (!die_type(&t, &t))
			return;	/* void */
	}

	switch (tag) {
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
	case DW_TAG_ptr_to_member_type:
		inner = t;
		while (die_type(&inner, &inner) && dwarf_tag(&inner) == DW_TAG_typedef)
			;
		if (tdname)
			snprintf(why, sizeof(why), "typedef %s", tdname);
		add_finding(a, dwarf_tag(&inner) == DW_TAG_subroutine_type ?
			       K_FUNCTION_POINTER : K_POINTER, &t, tdname ? why : NULL, decl);
		break;
	case DW_TAG_array_type:
		if (dwarf_child(&t, &inner) == 0) {
			do {
				if (dwarf_tag(&inner) != DW_TAG_subrange_type)
					continue;
				long long n = subrange_count(&inner);

				if (n >= 0)
					cat(a->path, sizeof(a->path), "[%lld]", n);
				else
					cat(a->path, sizeof(a->path), "[]");
			} while (dwarf_siblingof(&inner, &inner) == 0);
		}
		if (die_type(&t, &inner))
			visit_type(a, &inner, mname, decl);
		break;
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_class_type:
		visit_struct(a, &t, tdname);
		break;
	case DW_TAG_base_type:
	case DW_TAG_enumeration_type:
		if (local) {
			snprintf(why, sizeof(why), "typedef %s", local);
			add_finding(a, K_LOCAL_INT, &t, why, decl);
		} else if (is_fd_name(mname)) {
			snprintf(why, sizeof(why), "name %s ends in fd/fds", mname);
			add_finding(a, K_LOCAL_INT, type, why, decl);
		}
		break;
	default:
		break;
	}
	a->path[plen] = '\0';
}

/* The members of a struct or union at the current path. */
static void visit_struct(struct audit *a, Dwarf_Die *t, const char *tdname)
{
	size_t plen = strlen(a->path);
	const char *name = dwarf_diename(t);
	Dwarf_Die m, mt;
	bool pushed = false;

	if (dwarf_hasattr(t, DW_AT_declaration))
		return;	/* incomplete here: nothing by value */
	if ((name || tdname) && a->depth < CHAIN_MAX) {
		a->chain[a->depth++] = (struct chain_entry){ .name = { name, tdname }, .off = plen };
		pushed = true;
	}
	if (dwarf_child(t, &m) == 0) {
		do {
			if (dwarf_tag(&m) != DW_TAG_member || !die_type(&m, &mt))
				continue;
			const char *mn = dwarf_diename(&m);

			if (mn)	/* an anonymous struct or union adds nothing to the path */
				cat(a->path, sizeof(a->path), ".%s", mn);
			visit_type(a, &mt, mn, &m);
			a->path[plen] = '\0';
		} while (dwarf_siblingof(&m, &m) == 0);
	}
	if (pushed)
		a->depth--;
}

/* Walk a root once per file, however many units define it. */
static void visit_root(struct audit *a, Dwarf_Die *t, const char *name, const char *tdname)
{
	char key[PATH_MAX_LEN];
	const char *file = dwarf_decl_file(t);
	Dwarf_Word size = 0;
	Dwarf_Attribute at;
	int line = 0;
	size_t i;

	dwarf_decl_line(t, &line);
	if (dwarf_attr(t, DW_AT_byte_size, &at))
		dwarf_formudata(&at, &size);
	/* The file's base name: units built in other directories name the
	 * same header by other relative paths. */
	if (file && strrchr(file, '/'))
		file = strrchr(file, '/') + 1;
	snprintf(key, sizeof(key), "%s\t%s\t%d\t%llu", name, file ? file : "?", line,
		 (unsigned long long)size);
	for (i = 0; i < a->n_roots; i++)
		if (strcmp(a->roots[i], key) == 0)
			return;
	a->roots = xrealloc(a->roots, (a->n_roots + 1) * sizeof(*a->roots));
	a->roots[a->n_roots++] = xstrdup(key);

	a->root = name;
	snprintf(a->path, sizeof(a->path), "%s", name);
	a->depth = 0;
	visit_struct(a, t, tdname);
}

/* Every DIE under @die: structs and unions named *_shared (or --root), and
 * typedefs so named of a struct whose tag is not. */
static void find_roots(struct audit *a, Dwarf_Die *die)
{
	Dwarf_Die c, t;

	if (dwarf_child(die, &c) != 0)
		return;
	do {
		int tag = dwarf_tag(&c);
		const char *name = dwarf_diename(&c);

		if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) &&
		    is_root_name(name) && !dwarf_hasattr(&c, DW_AT_declaration)) {
			visit_root(a, &c, name, NULL);
		} else if (tag == DW_TAG_typedef && is_root_name(name) && die_type(&c, &t)) {
			while (is_qualifier(dwarf_tag(&t)) && die_type(&t, &t))
				;
			int tt = dwarf_tag(&t);
			const char *tn = dwarf_diename(&t);

			if ((tt == DW_TAG_structure_type || tt == DW_TAG_union_type) &&
			    !is_root_name(tn))
				visit_root(a, &t, name, name);
		}
		if (dwarf_haschildren(&c))
			find_roots(a, &c);
	} while (dwarf_siblingof(&c, &c) == 0);
}

/* ---- files -------------------------------------------------------------- */

struct module_walk {
	struct audit *a;
	unsigned modules, with_dwarf;
	int rc;
};

static int module_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
		     void *arg)
{
	struct module_walk *w = arg;
	Dwarf_Addr bias;
	Dwarf *dw;
	Elf *elf;
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie, subdie;
	uint8_t unit_type;
	Dwarf_Half version;

	(void)userdata; (void)name; (void)start;
	w->modules++;
	elf = dwfl_module_getelf(mod, &bias);
	if (elf && read_allows(w->a, elf) < 0)
		w->rc = -EINVAL;
	dw = dwfl_module_getdwarf(mod, &bias);
	if (!dw)
		return DWARF_CB_OK;
	w->with_dwarf++;
	while (dwarf_get_units(dw, cu, &cu, &version, &unit_type, &cudie, &subdie) == 0)
		find_roots(w->a, &cudie);
	return DWARF_CB_OK;
}

/* Is @path an ELF file or an archive (by its first bytes)? */
static int check_magic(const char *path)
{
	char m[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, PROG ": %s: cannot open: %s: give a built object, archive, library or executable\n",
			path, strerror(errno));
		return -errno;
	}
	n = read(fd, m, sizeof(m));
	close(fd);
	if ((n >= 4 && memcmp(m, ELFMAG, SELFMAG) == 0) ||
	    (n == 8 && memcmp(m, ARMAG, SARMAG) == 0))
		return 0;
	fprintf(stderr, PROG ": %s: not an ELF file: give a built object, archive, library or executable\n",
		path);
	return -ENOEXEC;
}

/* Does the file have a symbol table (is it not stripped)? */
static bool has_symtab(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool found = false;
	Elf *elf;
	Elf_Scn *scn = NULL;

	if (fd < 0)
		return false;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf && elf_kind(elf) == ELF_K_ELF) {
		while (!found && (scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;

			found = gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB;
		}
	} else if (elf) {
		found = true;	/* an archive: its members say for themselves */
	}
	elf_end(elf);
	close(fd);
	return found;
}

/* Audit one file into @a. @return 0, or -errno (bad input: logged). */
static int audit_file(struct audit *a, const char *path)
{
	static char *debuginfo_path;
	static const Dwfl_Callbacks cb = {
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
		.debuginfo_path = &debuginfo_path,
	};
	struct module_walk w = { .a = a };
	Dwfl *dwfl;
	int rc;

	a->file = path;
	if ((rc = check_magic(path)) < 0)
		return rc;
	dwfl = dwfl_begin(&cb);
	if (!dwfl) {
		fprintf(stderr, PROG ": %s: libdw: %s\n", path, dwfl_errmsg(-1));
		return -ENOMEM;
	}
	if (!dwfl_report_offline(dwfl, path, path, -1)) {
		fprintf(stderr, PROG ": %s: cannot read it as ELF (%s): give a built object, archive, library or executable\n",
			path, dwfl_errmsg(-1));
		dwfl_end(dwfl);
		return -ENOEXEC;
	}
	dwfl_report_end(dwfl, NULL, NULL);
	dwfl_getmodules(dwfl, module_cb, &w, 0);
	dwfl_end(dwfl);
	if (w.rc < 0)
		return w.rc;
	if (w.with_dwarf == 0) {
		if (has_symtab(path))
			fprintf(stderr, PROG ": %s: no DWARF debug information: build it with -g (meson buildtype debug or debugoptimized)\n",
				path);
		else
			fprintf(stderr, PROG ": %s: stripped (no symbols, no DWARF): audit the unstripped build, or install its debug symbols\n",
				path);
		return -ENODATA;
	}
	return 0;
}

/* ---- output ------------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_text(const struct audit *a, bool prefix, unsigned *bad, unsigned *ok)
{
	size_t i;
	unsigned nb = 0, na = 0;

	for (i = 0; i < a->n_f; i++) {
		const struct finding *f = &a->f[i];

		if (prefix)
			printf("%s: ", a->file);
		printf("%s: %s (%s%s%s), declared at %s:%d", f->path, kind_names[f->kind], f->type,
		       f->why ? ", " : "", f->why ? f->why : "", f->decl_file, f->decl_line);
		if (f->allowed) {
			printf(": allowed, because %s [MPOPS_AUDIT_ALLOW %s]\n", f->allowed->reason,
			       f->allowed_by);
			na++;
		} else {
			printf("\n");
			nb++;
		}
	}
	printf("%s: %zu *_shared type%s, %u finding%s not allowed, %u allowed\n", a->file,
	       a->n_roots, a->n_roots == 1 ? "" : "s", nb, nb == 1 ? "" : "s", na);
	*bad += nb;
	*ok += na;
}

static void print_json(const struct audit *a, bool first, unsigned *bad, unsigned *ok)
{
	size_t i;

	printf("%s{\"file\": ", first ? "" : ", ");
	json_str(a->file);
	printf(", \"types\": %zu, \"findings\": [", a->n_roots);
	for (i = 0; i < a->n_f; i++) {
		const struct finding *f = &a->f[i];

		printf("%s{\"root\": ", i ? ", " : "");
		json_str(f->root);
		printf(", \"path\": ");
		json_str(f->path);
		printf(", \"kind\": ");
		json_str(kind_names[f->kind]);
		printf(", \"type\": ");
		json_str(f->type);
		if (f->why) {
			printf(", \"why\": ");
			json_str(f->why);
		}
		printf(", \"decl_file\": ");
		json_str(f->decl_file);
		printf(", \"decl_line\": %d, \"allowed\": %s", f->decl_line,
		       f->allowed ? "true" : "false");
		if (f->allowed) {
			printf(", \"reason\": ");
			json_str(f->allowed->reason);
			printf(", \"allowed_by\": ");
			json_str(f->allowed_by);
			(*ok)++;
		} else {
			(*bad)++;
		}
		printf("}");
	}
	printf("]}");
}

static void audit_free(struct audit *a)
{
	size_t i;

	for (i = 0; i < a->n_allows; i++) {
		free(a->allows[i].type);
		free(a->allows[i].member);
		free(a->allows[i].reason);
	}
	for (i = 0; i < a->n_roots; i++)
		free(a->roots[i]);
	for (i = 0; i < a->n_f; i++) {
		free(a->f[i].root);
		free(a->f[i].path);
		free(a->f[i].type);
		free(a->f[i].why);
		free(a->f[i].decl_file);
		free(a->f[i].allowed_by);
	}
	free(a->allows);
	free(a->roots);
	free(a->f);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--json] [--local-type NAME]... [--root NAME]... FILE...\n"
		"  List every member reachable by value from a struct or union named *_shared\n"
		"  (nested structs, unions, arrays, typedefs) that only one process can use:\n"
		"    pointer                a data pointer\n"
		"    function pointer       a pointer to a function\n"
		"    process-local integer  an integer whose type is, through typedefs,\n"
		"                           mpops_fd_t, pthread_t, uintptr_t, intptr_t or a\n"
		"                           --local-type NAME, or whose member name ends in\n"
		"                           fd or fds (fd, kickfd, dev_fd, kick_fds)\n"
		"  each with its path (port_shared.vq[8].desc: member desc of each of the 8\n"
		"  elements of vq) and the file and line that declare it. FILE is a built\n"
		"  object, archive, shared library or executable with DWARF (-g).\n"
		"  A member allowed with MPOPS_AUDIT_ALLOW (<mpops/audit.h>) is printed as\n"
		"  \"allowed, because REASON\" and does not fail the audit.\n"
		"  --json             one JSON object: {\"files\": [{\"file\", \"types\", \"findings\":\n"
		"                     [{\"root\", \"path\", \"kind\", \"type\", \"why\", \"decl_file\",\n"
		"                     \"decl_line\", \"allowed\", \"reason\", \"allowed_by\"}]}],\n"
		"                     \"not_allowed\", \"allowed\"}\n"
		"  --local-type NAME  a typedef of your project that is process-local too\n"
		"  --root NAME        audit the struct, union or typedef NAME too, whatever its\n"
		"                     name (a PMD's shared structs before porting: virtio_hw)\n"
		"  exit status: 0 no finding but allowed ones, 1 findings not allowed,\n"
		"  2 bad input (not ELF, no DWARF, stripped, unreadable: one line on stderr\n"
		"  each, and with --json nothing on stdout) or usage\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "local-type", required_argument, NULL, 'l' },
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct audit *audits;
	bool json = false;
	unsigned bad = 0, ok = 0;
	int c, i, nfiles, status = EXIT_CLEAN;

	while ((c = getopt_long(argc, argv, "jl:r:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'l':
			extra_local_types = xrealloc(extra_local_types,
				(n_extra_local_types + 1) * sizeof(*extra_local_types));
			extra_local_types[n_extra_local_types++] = optarg;
			break;
		case 'r':
			extra_roots = xrealloc(extra_roots, (n_extra_roots + 1) * sizeof(*extra_roots));
			extra_roots[n_extra_roots++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_CLEAN;
		default:	/* getopt said what was wrong */
			fprintf(stderr, PROG ": see " PROG " --help\n");
			return EXIT_BAD_INPUT;
		}
	}
	if (optind == argc) {
		fprintf(stderr, PROG ": no FILE given: name a built object, archive, library or executable (--help)\n");
		return EXIT_BAD_INPUT;
	}
	elf_version(EV_CURRENT);
	/* Every file first: bad input leaves stdout empty, in both outputs
	 * alike when it is the only file. */
	nfiles = argc - optind;
	audits = xrealloc(NULL, nfiles * sizeof(*audits));
	for (i = 0; i < nfiles; i++) {
		audits[i] = (struct audit){ 0 };
		if (audit_file(&audits[i], argv[optind + i]) < 0) {
			status = EXIT_BAD_INPUT;
			audits[i].file = NULL;
		}
	}
	if (json && status == EXIT_CLEAN)
		printf("{\"files\": [");
	for (i = 0; i < nfiles; i++) {
		if (!audits[i].file || (json && status != EXIT_CLEAN))
			;
		else if (json)
			print_json(&audits[i], i == 0, &bad, &ok);
		else
			print_text(&audits[i], nfiles > 1, &bad, &ok);
		audit_free(&audits[i]);
	}
	if (json && status == EXIT_CLEAN)
		printf("], \"not_allowed\": %u, \"allowed\": %u}\n", bad, ok);
	free(audits);
	free(extra_local_types);
	free(extra_roots);
	if (status == EXIT_CLEAN && bad)
		status = EXIT_FINDINGS;
	return status;
}
