/* SPDX-License-Identifier: MIT */
/*
 * Snapshot and restore: a suspended device's whole state as a blob that a
 * fresh device, in this process or another, restores and resumes from, so
 * that the driver carries on without losing or repeating a request.
 *
 * The blob is versioned, little-endian whatever the host, and ends with a
 * CRC-32 of everything before it. It holds the negotiated features, the
 * status, config space and its generation, and per queue its size, ring
 * addresses, next avail and used indices, wrap counters (0 for split rings)
 * and the heads of requests in flight. Guest memory is not in it: the new
 * device maps the same memory through its transport before restoring.
 *
 * Layout (version 1), every integer little-endian:
 *   header   magic "UVSNAP\0\0", le32 version, le32 total length,
 *            le32 device id, le32 queue count, le32 config size
 *   device   le64 offered, le64 driver features, le64 features,
 *            u8 status, 3 zero bytes, le32 config generation, config bytes
 *   queue    u8 ready, u8 avail wrap, u8 used wrap, u8 zero, le32 size,
 *   (each)   le64 desc, le64 avail, le64 used, le16 next avail, le16 used idx,
 *            le32 in-flight count, le16 head per request in flight
 *   trailer  le32 CRC-32 (IEEE) of every byte before it
 */
#ifndef UVIRTIO_SNAPSHOT_H
#define UVIRTIO_SNAPSHOT_H

#include <stddef.h>

#include "uvirtio/api.h"
#include "uvirtio/device.h"

#define UVIRTIO_SNAPSHOT_VERSION 1u

/**
 * uvirtio_device_snapshot_size() - bytes uvirtio_device_snapshot() writes
 * for @dev now.
 */
UVIRTIO_API
size_t uvirtio_device_snapshot_size(const struct uvirtio_device *dev);

/**
 * uvirtio_device_snapshot() - write @dev's state into @buf.
 * @dev:  a suspended device (it presents SUSPEND), on its control thread.
 * @buf:  the caller's, at least uvirtio_device_snapshot_size() bytes.
 * @size: bytes at @buf.
 *
 * Return: the bytes written; -EBUSY when the device is not suspended (its
 * rings would move under the snapshot); -ENOSPC when @size is too small.
 */
UVIRTIO_API
long uvirtio_device_snapshot(const struct uvirtio_device *dev, void *buf, size_t size);

/**
 * uvirtio_device_restore() - make a fresh @dev what the snapshot was.
 * @dev:  initialised by its device type, status 0, its guest memory already
 *        mapped by the transport; on its control thread.
 * @buf, @size: the blob; only read.
 * @why:  if not NULL, set to a static one-line reason on failure.
 *
 * Nothing is changed on failure. On success the device is suspended with
 * the snapshot's features, config and queues; the driver resumes it by
 * setting DRIVER_OK.
 *
 * Return: 0; -EBADMSG for a blob that is truncated, corrupt (bad magic,
 * length or checksum) or inconsistent; -EPROTONOSUPPORT for another
 * version; -EINVAL for a snapshot of another device type, queue count,
 * config size or feature set than @dev offers, or a queue @dev cannot set
 * up in its memory; -EBUSY when @dev is not fresh.
 */
UVIRTIO_API
int uvirtio_device_restore(struct uvirtio_device *dev, const void *buf, size_t size,
			   const char **why);

#endif
