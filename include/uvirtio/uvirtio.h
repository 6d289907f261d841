/* SPDX-License-Identifier: MIT */
/*
 * Everything public in uvirtio, for programs that want one include.
 *
 * Errors: every function that can fail returns a negative errno value (never
 * sets errno); each code means one thing across the library, listed once in
 * docs/ARCHITECTURE.md, "Errors" (-EIO: the queue or device is broken and
 * needs a reset; -ENOTCONN: the peer is gone; -ESHUTDOWN: the queue is
 * stopped). Why something failed goes to the optional log sink, log.h.
 */
#ifndef UVIRTIO_UVIRTIO_H
#define UVIRTIO_UVIRTIO_H

#include "uvirtio/virtio_spec.h"
#include "uvirtio/memory.h"
#include "uvirtio/dma.h"
#include "uvirtio/shared_mem.h"
#include "uvirtio/devq.h"
#include "uvirtio/drvq.h"
#include "uvirtio/transport.h"
#include "uvirtio/device.h"
#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"
#include "uvirtio/rng.h"
#include "uvirtio/blk_dev.h"
#include "uvirtio/blk_drv.h"
#include "uvirtio/net_dev.h"
#include "uvirtio/vhost_backend.h"
#include "uvirtio/vhost_frontend.h"
#include "uvirtio/vhost_user.h"
#include "uvirtio/trace.h"
#include "uvirtio/regbus.h"
#include "uvirtio/mmio.h"
#include "uvirtio/pci.h"
#include "uvirtio/snapshot.h"
#include "uvirtio/log.h"

#endif
