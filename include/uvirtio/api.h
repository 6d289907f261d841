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

#if defined(__GNUC__) || defined(__clang__)
#define UVIRTIO_API __attribute__((visibility("default")))
#else
#define UVIRTIO_API
#endif

#endif
