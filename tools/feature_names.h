/* SPDX-License-Identifier: MIT */
/* Feature bits by name, for the commands that print negotiations. */
#ifndef UVIRTIO_TOOLS_FEATURE_NAMES_H
#define UVIRTIO_TOOLS_FEATURE_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* virtio-blk's device-specific bits (0 to 23). */
extern const char *const features_blk_names[24];

/* The names of the bits set in @f, separated by spaces: @device_names (may
 * be NULL) names bits 0 to 23, the transport bits are named here, and a bit
 * the spec names for neither is printed bitN. Return: @buf. */
const char *features_names(const char *const *device_names, uint64_t f, char *buf, size_t size);

/* @f as hex, then its names in parentheses. Return: @buf. */
const char *features_describe(const char *const *device_names, uint64_t f, char *buf, size_t size);

#endif
