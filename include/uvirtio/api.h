/* SPDX-License-Identifier: MIT */
/*
 * What libuvirtio.so exports. The library is built with -fvisibility=hidden:
 * a function is part of the shared library's ABI only when its declaration
 * in a public header carries UVIRTIO_API. The linker version script
 * (scripts/gen-symbol-map.py) is generated from those declarations, and
 * abi/libuvirtio.symbols lists the result; docs/ARCHITECTURE.md, "Exported
 * symbols", says how to change it.
 */
#ifndef UVIRTIO_API_H
#define UVIRTIO_API_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define UVIRTIO_API __attribute__((visibility("default")))
#else
#define UVIRTIO_API
#endif

/*
 * The storage of a caller-owned object whose layout is private to the
 * library (docs/ARCHITECTURE.md, "Objects"). A public object type is
 *
 *	struct uvirtio_devq { UVIRTIO_OPAQUE(256); };
 *
 * so a program can embed it, put it on its stack or allocate it, and only
 * the functions declared beside it read or change it. The byte count is
 * part of the ABI: it is chosen with room to grow, and the library checks
 * at compile time (UVIRTIO_OPAQUE_FITS in src/) that its private struct
 * fits. The member's name says that touching it is not supported.
 */
#define UVIRTIO_OPAQUE(bytes)                                                                      \
	union {                                                                                    \
		unsigned char bytes_[bytes];                                                       \
		max_align_t align_;                                                                \
	} uvirtio_private_do_not_touch

/* For the library's own sources: the private struct behind a public opaque
 * one fits its bytes and its alignment. */
#define UVIRTIO_OPAQUE_FITS(private_type, public_type)                                            \
	_Static_assert(sizeof(private_type) <= sizeof(public_type) &&                              \
			       _Alignof(private_type) <= _Alignof(public_type),                    \
		       #private_type " outgrew " #public_type)

#endif
