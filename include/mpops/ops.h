/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file ops.h
 * The ops registry: per-process ops tables addressed by stable IDs.
 *
 * An *ops class* is a struct of function pointers declared from a member
 * list, so its layout signature is derived from the members themselves.
 * Each member is OP(return type, name, (parameter types)): the types only,
 * 1 to 8 of them, without parameter names (those go in comments); a
 * parameter of function-pointer or array type needs a typedef.
 *
 *     #define VTPCI_OPS(OP) \
 *         OP(int, notify_queue, (struct vt_hw *, uint16_t)) \
 *         OP(int, get_status, (struct vt_hw *, uint8_t *))
 *     MPOPS_OPS_CLASS_DECLARE(vtpci, VTPCI_OPS)   // in a header
 *     MPOPS_OPS_CLASS_DEFINE(vtpci, VTPCI_OPS)    // in one .c file
 *
 * What the signature covers, exactly: the class name; the member list as
 * written, whitespace and comments aside (each op's return type, name and
 * parameter types, in order); for the return type and each parameter
 * type, its size (sizeof) and its kind: signed integer, unsigned integer,
 * floating, or other (pointer, struct, union); and the size of struct
 * <cls>_ops. So a typedef used in a parameter that changes from uint16_t
 * to uint32_t, or from uint32_t to int32_t, changes the signature although
 * the member list reads the same, and a process built so is refused at
 * attach (or mpops_ops_bind()) with -EPROTO naming the class. It does not
 * cover what a pointer parameter points to (the layout of a struct passed
 * by pointer: give shared structs their own version or layout hash), a
 * typedef'd pointer changing its target type, the layout of a struct
 * passed by value beyond its size, nor what the ops do. Parameter names
 * are not part of it.
 *
 * Every op returns a signed integer type (int, long, ...): 0, a count, or
 * -errno, which is what the dummy table returns too. An op returning
 * anything else (a pointer, double, void, an unsigned type) does not
 * compile: the class declaration fails with "op NAME() returns TYPE: an
 * mpops op must return a signed integer type". An *implementation* is a
 * const instance registered in every process at load time:
 *
 *     static const struct vtpci_ops user_ops = { .notify_queue = ..., ... };
 *     MPOPS_OPS_IMPL(vtpci, user, &user_ops);
 *
 * When the process creates or attaches a region (or calls mpops_ops_bind()
 * on memory it provides), each implementation gets the ID that the shared
 * name table holds for "class/impl", appending it on first registration.
 * IDs therefore mean the same in every process, whatever the load order or
 * the subset registered. Shared structs store the ID; call sites resolve it
 * in their own process with one indexed load:
 *
 *     MPOPS_OPS(vtpci, hw->ops_id)->notify_queue(hw, q);
 *
 * MPOPS_OPS() never returns NULL: an ID this process has not registered,
 * and any value of the 16-bit ID type outside 0..MPOPS_OPS_MAX-1, resolves
 * to the class's dummy table, whose ops log once and return -ENOTSUP.
 * Checks belong at attach time: mpops_ops_resolve().
 *
 * What the hot path does, exactly: each class has a process-local array of
 * MPOPS_OPS_MAX copies of its ops struct (mpops__tbl_<cls>, 256 entries of
 * sizeof(struct <cls>_ops) bytes: 2 KiB per op). Slot 0, every slot without
 * a registered implementation and every slot after unbinding hold a copy of
 * the dummy table; binding copies the implementation's table into the slot
 * of its ID. MPOPS_OPS(cls, id) is
 *
 *     &mpops__tbl_<cls>[id < MPOPS_OPS_MAX ? id : 0]
 *
 * a compare and a conditional move (no branch, no load), so
 * MPOPS_OPS(cls, id)->op(...) is one load of the function pointer from this
 * process's array and an indirect call, as with a raw function pointer
 * kept in process-local memory. The pointer MPOPS_OPS() returns stays valid
 * for the life of the process; what it points to changes only at bind,
 * unbind and late registration (a call racing with those runs the dummy's
 * or the implementation's op, op by op). mpops_ops_resolve() returns the
 * implementation's own table instead.
 */
#ifndef MPOPS_OPS_H
#define MPOPS_OPS_H

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <mpops/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Capacity of the ID space (a power of two). ID 0 is never assigned. */
#define MPOPS_OPS_MAX 256
/** Longest class or implementation name, without the NUL. */
#define MPOPS_OPS_NAME_MAX 31

/** A stable ops ID, the same in every process bound to one name table. */
typedef uint16_t mpops_ops_id_t;
#define MPOPS_OPS_ID_NONE ((mpops_ops_id_t)0)

/** Kinds of types in a signature (struct mpops_ops_class.types). */
#define MPOPS_OPS_KIND_OTHER 0		/**< pointer, struct, union */
#define MPOPS_OPS_KIND_SIGNED 1		/**< signed integer (and enums that are) */
#define MPOPS_OPS_KIND_UNSIGNED 2	/**< unsigned integer, _Bool */
#define MPOPS_OPS_KIND_FLOAT 3		/**< float, double, long double */

/** Process-local descriptor of an ops class (made by the macros). */
struct mpops_ops_class {
	const char *name;	/**< class name, e.g. "vtpci" */
	const char *signature;	/**< the member list as text */
	size_t ops_size;	/**< sizeof(struct <class>_ops) */
	const uint32_t *types;	/**< per op: the return type's code, then
				     each parameter's, then 0; a code is
				     sizeof << 2 | kind (MPOPS_OPS_KIND_*) */
	size_t ntypes;		/**< entries in @c types */
	void *table;		/**< this process's MPOPS_OPS_MAX copies of
				     struct <class>_ops, indexed by ID */
	const void *dummy;	/**< table of -ENOTSUP ops */
};

/** Process-local descriptor of an implementation (made by MPOPS_OPS_IMPL). */
struct mpops_ops_impl {
	const struct mpops_ops_class *cls;
	const char *name;	/**< implementation name, e.g. "user" */
	const void *ops;	/**< the const ops table */
};

/* ---- declaring classes and implementations ---------------------------- */

/** @cond internal */
/* Class tables and descriptors are reachable from every object that
 * includes the class header, even in a library built with hidden
 * visibility. */
#define MPOPS__VISIBLE __attribute__((visibility("default")))
/* Every op returns a signed integer type: 0, a count or -errno, which the
 * dummy can return too. Anything else (a pointer, a floating type, void, an
 * unsigned type) stops the build at the class declaration, naming the op. */
#ifdef __cplusplus
#define MPOPS__RET_CHECK(ret, name)
#else
#define MPOPS__RET_IS_SIGNED_INT(ret)                                        \
	_Generic((ret (*)(void))0,                                           \
		 signed char (*)(void): 1, short (*)(void): 1,               \
		 int (*)(void): 1, long (*)(void): 1,                        \
		 long long (*)(void): 1, default: 0)
#define MPOPS__RET_CHECK(ret, name)                                          \
	_Static_assert(MPOPS__RET_IS_SIGNED_INT(ret),                        \
		       "op " #name "() returns " #ret ": an mpops op must "   \
		       "return a signed integer type (0, a count or -errno)");
#endif
#define MPOPS__FIELD(ret, name, params) MPOPS__RET_CHECK(ret, name) ret (*name) params;
#define MPOPS__SIG(ret, name, params) #ret " " #name #params ";"

/* Parameter lists (T1, ..., Tn), 1 <= n <= 8: M(Ti, i) for each, joined by
 * commas. */
#define MPOPS__CAT(a, b) MPOPS__CAT_(a, b)
#define MPOPS__CAT_(a, b) a##b
#define MPOPS__NARGS(...) MPOPS__NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define MPOPS__NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define MPOPS__MAP(M, ...)                                                   \
	MPOPS__CAT(MPOPS__MAP_, MPOPS__NARGS(__VA_ARGS__))(M, __VA_ARGS__)
#define MPOPS__MAP_1(M, a) M(a, 1)
#define MPOPS__MAP_2(M, a, b) M(a, 1), M(b, 2)
#define MPOPS__MAP_3(M, a, b, c) M(a, 1), M(b, 2), M(c, 3)
#define MPOPS__MAP_4(M, a, b, c, d) M(a, 1), M(b, 2), M(c, 3), M(d, 4)
#define MPOPS__MAP_5(M, a, b, c, d, e) MPOPS__MAP_4(M, a, b, c, d), M(e, 5)
#define MPOPS__MAP_6(M, a, b, c, d, e, f)                                    \
	MPOPS__MAP_4(M, a, b, c, d), M(e, 5), M(f, 6)
#define MPOPS__MAP_7(M, a, b, c, d, e, f, g)                                 \
	MPOPS__MAP_4(M, a, b, c, d), M(e, 5), M(f, 6), M(g, 7)
#define MPOPS__MAP_8(M, a, b, c, d, e, f, g, h)                              \
	MPOPS__MAP_4(M, a, b, c, d), M(e, 5), M(f, 6), M(g, 7), M(h, 8)

/* The dummy's parameters get names (a C11 definition needs them). A member
 * list written with names fails here: "expected ... before
 * 'mpops__param_1_types_only'". */
#define MPOPS__PARAM(T, i) T mpops__param_##i##_types_only
#define MPOPS__PARAMS(...) MPOPS__MAP(MPOPS__PARAM, __VA_ARGS__)

/* A type's code in the signature: sizeof << 2 | kind. */
#define MPOPS__KIND(T)                                                       \
	_Generic(*(T *)0,                                                    \
		 _Bool: MPOPS_OPS_KIND_UNSIGNED,                             \
		 char: (CHAR_MIN < 0 ? MPOPS_OPS_KIND_SIGNED : MPOPS_OPS_KIND_UNSIGNED), \
		 signed char: MPOPS_OPS_KIND_SIGNED,                         \
		 unsigned char: MPOPS_OPS_KIND_UNSIGNED,                     \
		 short: MPOPS_OPS_KIND_SIGNED,                               \
		 unsigned short: MPOPS_OPS_KIND_UNSIGNED,                    \
		 int: MPOPS_OPS_KIND_SIGNED,                                 \
		 unsigned int: MPOPS_OPS_KIND_UNSIGNED,                      \
		 long: MPOPS_OPS_KIND_SIGNED,                                \
		 unsigned long: MPOPS_OPS_KIND_UNSIGNED,                     \
		 long long: MPOPS_OPS_KIND_SIGNED,                           \
		 unsigned long long: MPOPS_OPS_KIND_UNSIGNED,                \
		 float: MPOPS_OPS_KIND_FLOAT,                                \
		 double: MPOPS_OPS_KIND_FLOAT,                               \
		 long double: MPOPS_OPS_KIND_FLOAT,                          \
		 default: MPOPS_OPS_KIND_OTHER)
#define MPOPS__TYPE_CODE(T, i) ((uint32_t)(sizeof(T) << 2 | MPOPS__KIND(T)))
#define MPOPS__TYPE_CODES(...) MPOPS__MAP(MPOPS__TYPE_CODE, __VA_ARGS__)
#define MPOPS__TYPES(ret, name, params)                                      \
	MPOPS__TYPE_CODE(ret, 0), MPOPS__TYPE_CODES params, 0,

#define MPOPS__DUMMY_FN(ret, name, params)                                   \
	static ret mpops__dummy_##name(MPOPS__PARAMS params)                 \
	{                                                                    \
		static int once;                                             \
		mpops__dummy_called(mpops__this_class, #name, &once);        \
		return (ret)-ENOTSUP;                                        \
	}
#define MPOPS__DUMMY_INIT(ret, name, params) .name = mpops__dummy_##name,

/* Internal: the constructors' registration. A failure is not logged then
 * (main() has had no chance to install a log callback): the next
 * mpops_ops_bind() logs it and fails with its errno. */
MPOPS_API void mpops__ops_class_register_at_load(const struct mpops_ops_class *cls);
MPOPS_API void mpops__ops_register_at_load(const struct mpops_ops_impl *impl);

/* Internal: called by dummy ops; logs once per op. */
MPOPS_API void mpops__dummy_called(const struct mpops_ops_class *cls,
				   const char *op, int *once);
/** @endcond */

/**
 * Declare ops class @p cls (in a header): struct cls_ops, the class
 * descriptor mpops_class_<cls>, the per-process table, and the typed
 * accessors mpops_ops_get_<cls>() and mpops_ops_resolve_<cls>().
 */
#define MPOPS_OPS_CLASS_DECLARE(cls, MEMBERS)                                \
	struct cls##_ops { MEMBERS(MPOPS__FIELD) };                          \
	extern MPOPS__VISIBLE struct cls##_ops mpops__tbl_##cls[MPOPS_OPS_MAX]; \
	extern MPOPS__VISIBLE const struct mpops_ops_class mpops_class_##cls; \
	/* Hot path: a branchless clamp (slot 0 is the dummy), no load. */   \
	static inline __attribute__((unused)) const struct cls##_ops *      \
	mpops_ops_get_##cls(mpops_ops_id_t id)                               \
	{                                                                    \
		return &mpops__tbl_##cls[id < MPOPS_OPS_MAX ? id : 0];       \
	}                                                                    \
	/* Checked path: see mpops_ops_resolve(). */                         \
	static inline __attribute__((unused)) int                            \
	mpops_ops_resolve_##cls(mpops_ops_id_t id,                           \
			const struct cls##_ops **out)                        \
	{                                                                    \
		const void *p = NULL;                                        \
		int rc = mpops_ops_resolve(&mpops_class_##cls, id, &p);      \
		*out = (const struct cls##_ops *)p;                          \
		return rc;                                                   \
	}

/**
 * Define ops class @p cls (in exactly one .c file, at most one class per
 * file): its dummy ops, table and descriptor.
 */
#define MPOPS_OPS_CLASS_DEFINE(cls, MEMBERS)                                 \
	struct cls##_ops mpops__tbl_##cls[MPOPS_OPS_MAX];                    \
	static const struct mpops_ops_class *const mpops__this_class =      \
		&mpops_class_##cls;                                          \
	_Pragma("GCC diagnostic push")                                       \
	_Pragma("GCC diagnostic ignored \"-Wunused-parameter\"")             \
	MEMBERS(MPOPS__DUMMY_FN)                                             \
	_Pragma("GCC diagnostic pop")                                        \
	static const struct cls##_ops mpops__dummy_ops_##cls = {             \
		MEMBERS(MPOPS__DUMMY_INIT)                                   \
	};                                                                   \
	static const uint32_t mpops__types_##cls[] = { MEMBERS(MPOPS__TYPES) }; \
	const struct mpops_ops_class mpops_class_##cls = {                   \
		.name = #cls,                                                \
		.signature = MEMBERS(MPOPS__SIG),                            \
		.ops_size = sizeof(struct cls##_ops),                        \
		.types = mpops__types_##cls,                                 \
		.ntypes = sizeof(mpops__types_##cls) / sizeof(uint32_t),     \
		.table = mpops__tbl_##cls,                                   \
		.dummy = &mpops__dummy_ops_##cls,                            \
	};                                                                   \
	__attribute__((constructor)) static void mpops__class_ctor_##cls(void) \
	{                                                                    \
		mpops__ops_class_register_at_load(&mpops_class_##cls);       \
	}

/**
 * Define and register at load time implementation @p impl of class @p cls
 * with the const table @p ops (type-checked against struct cls_ops).
 * Its descriptor is mpops_impl_<cls>_<impl>.
 */
#define MPOPS_OPS_IMPL(cls_, impl_, ops_)                                    \
	const struct mpops_ops_impl mpops_impl_##cls_##_##impl_ = {          \
		.cls = &mpops_class_##cls_,                                  \
		.name = #impl_,                                              \
		.ops = 1 ? (ops_) : (const struct cls_##_ops *)0,            \
	};                                                                   \
	__attribute__((constructor)) static void                             \
	mpops__impl_ctor_##cls_##_##impl_(void)                              \
	{                                                                    \
		mpops__ops_register_at_load(&mpops_impl_##cls_##_##impl_);   \
	}

/**
 * Declare implementation @p impl_ of class @p cls_ in a header: its
 * descriptor mpops_impl_<cls>_<impl>, for mpops_ops_id() and the like.
 */
#define MPOPS_OPS_IMPL_DECLARE(cls_, impl_)                                  \
	extern MPOPS__VISIBLE const struct mpops_ops_impl                    \
		mpops_impl_##cls_##_##impl_;

/**
 * In a driver's public header, after MPOPS_OPS_IMPL_DECLARE: every program
 * that includes the header links the implementation, even when it calls
 * nothing of the driver directly (it uses the driver only through IDs and
 * generic calls). Without a reference, a linker drops a shared library
 * under --as-needed and an archive member with it, and with them the
 * constructor that registers the implementation.
 *
 * Static linking: an implementation in a static archive (a driver's .a,
 * or an application's own) is linked only if something references its
 * object file. Either include a header with this macro (the archive member
 * is then taken), or link the archive whole (meson: link_whole; ld:
 * -Wl,--whole-archive lib.a -Wl,--no-whole-archive). Otherwise the ID
 * resolves to the dummy, and mpops_ops_resolve() says so: "C/I is not
 * registered in this process: is the driver linked? (from a static
 * archive, ...: include a header with MPOPS_OPS_IMPL_REQUIRE(C, I), or
 * link the archive whole: meson link_whole, ...)".
 */
#define MPOPS_OPS_IMPL_REQUIRE(cls_, impl_)                                  \
	static const struct mpops_ops_impl *const                            \
		mpops__require_##cls_##_##impl_ __attribute__((used)) =      \
		&mpops_impl_##cls_##_##impl_;

/** Hot-path accessor: MPOPS_OPS(vtpci, hw->ops_id)->notify_queue(...). */
#define MPOPS_OPS(cls, id) mpops_ops_get_##cls(id)

/* ---- registration ------------------------------------------------------ */

/**
 * Register a class in this process (done by MPOPS_OPS_CLASS_DEFINE at load
 * time; also implied by registering one of its implementations). Fills
 * every slot of the class's table with a copy of its dummy.
 * @return 0, -EEXIST another class of the same name with a different
 *   signature, -ENOSPC too many classes, -EINVAL.
 */
MPOPS_API int mpops_ops_class_register(const struct mpops_ops_class *cls);

/**
 * Register an implementation in this process (done by MPOPS_OPS_IMPL at
 * load time). If the process is already bound to a name table, it gets its
 * ID at once. Any thread.
 * @return 0, -EEXIST same class/name already registered with another table,
 *   -ENOSPC, -EPROTO signature clash with the bound table, -EINVAL.
 */
MPOPS_API int mpops_ops_register(const struct mpops_ops_impl *impl);

/* ---- the shared name table --------------------------------------------- */

/** Bytes needed for a shared name table (for caller-provided memory). */
MPOPS_API size_t mpops_ops_table_size(void);

/**
 * Initialise a shared name table in @p mem (@p len >= mpops_ops_table_size(),
 * 64-byte aligned, mapped MAP_SHARED in every process that binds it: for
 * example a DPDK memzone). Call once, in the process that owns the memory,
 * before anyone binds.
 * @return 0 or -EINVAL (too small, misaligned, NULL).
 */
MPOPS_API int mpops_ops_table_init(void *mem, size_t len);

/** mpops_ops_bind() flags */
#define MPOPS_OPS_BIND_F_LOOKUP_ONLY (1u << 0) /**< take existing IDs only,
						    append nothing (read-only
						    attach) */

/**
 * Bind this process's ops tables to the name table at @p mem: every
 * registered implementation gets its ID (appended if new), and the slot
 * of that ID in its class's table gets a copy of its ops. A process is bound to one table at a time
 * (regions call this for you). Any thread, not concurrently with itself.
 * @return 0, or -EPROTO table not initialised / wrong version, or an ops
 *   class whose signature differs from the one already in the table (the
 *   log names class, implementation and both signature hashes); or the
 *   errno of a registration that failed at load time (-ENOSPC more
 *   classes or implementations than a process can have, -EEXIST one
 *   defined twice, -EINVAL), which constructors do not log themselves:
 *   this call logs it, through the log callback main() installed;
 *   -ENOSPC name table full (names the implementation); -EBUSY bound to
 *   another table; -EINVAL.
 */
MPOPS_API int mpops_ops_bind(void *mem, unsigned flags);

/**
 * Undo mpops_ops_bind(): every table slot goes back to its dummy.
 * @return 0 or -ENOENT not bound to @p mem.
 */
MPOPS_API int mpops_ops_unbind(void *mem);

/* ---- lookups (not for the hot path) ------------------------------------ */

/**
 * ID of a registered implementation in the bound table.
 * @return 0 and *id, -ENOENT not bound (or not yet given an ID).
 */
MPOPS_API int mpops_ops_id(const struct mpops_ops_impl *impl,
			   mpops_ops_id_t *id);

/**
 * ID of "class/impl" by name in the bound table, whether or not this
 * process registered it.
 * @return 0 and *id, -ENOENT no such name, -ENOTCONN not bound.
 */
MPOPS_API int mpops_ops_find(const char *cls, const char *impl,
			     mpops_ops_id_t *id);

/**
 * Checked resolution of @p id for class @p cls, for attach time.
 * @return 0 and *ops (this process's table), or
 *   -ERANGE @p id is 0 or beyond the name table;
 *   -EINVAL @p id names an implementation of another class;
 *   -ENOENT the table has it but this process did not register it (the
 *   log says e.g. "vtpci/user is not registered in this process: is the
 *   driver linked?", and how to link one from a static archive: see
 *   MPOPS_OPS_IMPL_REQUIRE); *ops is then the dummy table, never NULL.
 */
MPOPS_API int mpops_ops_resolve(const struct mpops_ops_class *cls,
				mpops_ops_id_t id, const void **ops);

/**
 * Names of @p id in the bound table (buffers of MPOPS_OPS_NAME_MAX + 1;
 * either may be NULL).
 * @return 0, -ERANGE, -ENOTCONN not bound.
 */
MPOPS_API int mpops_ops_name(mpops_ops_id_t id, char *cls, char *impl);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_OPS_H */
