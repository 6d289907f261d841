// SPDX-License-Identifier: MIT
/*
 * `uvirtio check`, negotiation and config: the backend offers VERSION_1,
 * FEATURES_OK sticks with every feature and with VERSION_1 alone, GET_CONFIG
 * is answered and the config space's values are ones a driver can use.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "feature_names.h"
#include "uvirtio/driver.h"

/* The config space a driver reads: every field up to write_zeroes_may_unmap
 * and its padding, the 60 bytes QEMU 7.2 knows and asks for. Newer headers
 * add fields (secure erase, zoned) that a backend need not have, and a
 * backend may refuse GET_CONFIG for more bytes than its config space. */
#define CONFIG_BYTES 60u

/* ---- 1. negotiation and config ------------------------------------------ */

static enum check_verdict check_version_1(struct check_ctx *c)
{
	struct check_conn conn;
	uint64_t f;
	char names[512];
	int ret = check_connect(c, &conn);

	if (ret == -ENODEV)
		return FAIL(c, "the backend does not offer VIRTIO_F_VERSION_1 (GET_FEATURES)");
	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	ret = conn.t->ops->get_features(conn.t, &f);
	check_disconnect(&conn);
	if (ret)
		return FAIL(c, "get_features: %s", err_name(ret));
	features_names(features_blk_names, f, names, sizeof(names));
	if (!(f & UVIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return FAIL(c, "VERSION_1 not offered (offered 0x%" PRIx64 ": %s)", f, names);
	return PASS(c, "offered 0x%" PRIx64 ": %s", f, names);
}

/* Negotiate @wanted through the driver core: FEATURES_OK must stick. */
static int negotiate(struct check_ctx *c, uint64_t wanted, uint64_t *got, char *why, size_t whylen)
{
	struct check_conn conn;
	struct uvirtio_driver drv;
	int ret = check_connect(c, &conn);

	if (ret) {
		snprintf(why, whylen, "cannot connect: %s", check_connect_error(&conn, ret));
		return ret;
	}
	ret = uvirtio_driver_probe(&drv, conn.t, wanted);
	if (ret == -ENODEV)
		snprintf(why, whylen, "FEATURES_OK did not stick after SET_FEATURES(0x%" PRIx64 ")",
			 uvirtio_driver_features(&drv));
	else if (ret)
		snprintf(why, whylen, "negotiation failed: %s", err_name(ret));
	*got = uvirtio_driver_features(&drv);
	if (!ret)
		uvirtio_driver_remove(&drv, NULL, NULL);
	check_disconnect(&conn);
	return ret;
}

static enum check_verdict check_features_ok(struct check_ctx *c)
{
	uint64_t all, minimal;
	char why[256], names[512];

	if (negotiate(c, UVIRTIO_BLK_DRV_FEATURES, &all, why, sizeof(why)))
		return FAIL(c, "all features: %s", why);
	if (negotiate(c, 0, &minimal, why, sizeof(why)))
		return FAIL(c, "VERSION_1 alone: %s", why);
	features_names(features_blk_names, all, names, sizeof(names));
	return PASS(c, "FEATURES_OK sticks with 0x%" PRIx64 " (%s) and with 0x%" PRIx64 " (VERSION_1 alone)",
		    all, names, minimal);
}

static enum check_verdict check_config_get_config(struct check_ctx *c)
{
	struct check_conn conn;
	struct virtio_blk_config cfg;
	uint64_t offered = 0, used;
	int ret = check_connect(c, &conn);

	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	if (!conn.fe) {
		check_disconnect(&conn);
		return NA(c, "loopback: no vhost-user protocol features");
	}
	used = uvirtio_vhost_frontend_protocol_features(conn.fe, &offered);
	if (!(offered & UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG))) {
		check_disconnect(&conn);
		return FAIL(c, "protocol feature CONFIG not offered (offered 0x%" PRIx64 "): config space cannot be read",
			    offered);
	}
	ret = conn.t->ops->get_config(conn.t, 0, &cfg, CONFIG_BYTES);
	if (ret) {
		FAIL(c, "GET_CONFIG of %u bytes: %s (%s)", CONFIG_BYTES, err_name(ret),
		     uvirtio_vhost_frontend_error(conn.fe));
		check_disconnect(&conn);
		return CHECK_FAIL;
	}
	check_disconnect(&conn);
	return PASS(c, "protocol features offered 0x%" PRIx64 ", used 0x%" PRIx64 "; GET_CONFIG of %u bytes answered",
		    offered, used, CONFIG_BYTES);
}

static enum check_verdict check_config_values(struct check_ctx *c)
{
	struct check_conn conn;
	struct uvirtio_driver drv;
	struct virtio_blk_config cfg;
	char bad[512] = "", line[768];
	size_t n = 0;
	int ret = check_connect(c, &conn);

	if (ret)
		return FAIL(c, "cannot connect: %s", check_connect_error(&conn, ret));
	ret = uvirtio_driver_probe(&drv, conn.t, UVIRTIO_BLK_DRV_FEATURES);
	memset(&cfg, 0, sizeof(cfg));
	if (!ret)
		ret = uvirtio_driver_config_read(&drv, 0, &cfg, CONFIG_BYTES);
	if (ret) {
		FAIL(c, "probe or config read of %u bytes failed: %s", CONFIG_BYTES, err_name(ret));
		uvirtio_driver_remove(&drv, NULL, NULL);
		check_disconnect(&conn);
		return CHECK_FAIL;
	}
	uint64_t cap = le64toh(cfg.capacity);
	uint32_t blk_size = le32toh(cfg.blk_size), seg_max = le32toh(cfg.seg_max), size_max = le32toh(cfg.size_max);
	uint16_t nq = le16toh(cfg.num_queues);
	unsigned fe_queues = conn.fe ? uvirtio_vhost_frontend_num_queues(conn.fe) : 0;

	size_t nb = 0;
#define BAD(...) (nb += (size_t)snprintf(bad + nb, nb < sizeof(bad) ? sizeof(bad) - nb : 0, __VA_ARGS__))
	n += (size_t)snprintf(line, sizeof(line), "capacity %" PRIu64 " sectors", cap);
	if (!cap)
		BAD("capacity is 0; ");
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_BLK_SIZE)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", blk_size %u", blk_size);
		if (blk_size < 512 || (blk_size & (blk_size - 1)))
			BAD("blk_size %u is not a power of two >= 512; ", blk_size);
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_SEG_MAX)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", seg_max %u", seg_max);
		if (seg_max < 1)
			BAD("seg_max is 0 with SEG_MAX; ");
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_SIZE_MAX)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", size_max %u", size_max);
		if (size_max < 1)
			BAD("size_max is 0 with SIZE_MAX (no segment could hold a byte); ");
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_MQ)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0, ", num_queues %u", nq);
		if (nq < 1)
			BAD("num_queues is 0 with MQ; ");
		if (fe_queues && nq > fe_queues)
			BAD("num_queues %u is more than the %u queues GET_QUEUE_NUM reported; ", nq, fe_queues);
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_TOPOLOGY) && cfg.physical_block_exp > 15)
		BAD("physical_block_exp %u (a physical block over 32 MiB); ", cfg.physical_block_exp);
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_DISCARD)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0,
				      ", max_discard_sectors %u", le32toh(cfg.max_discard_sectors));
		if (!le32toh(cfg.max_discard_sectors) || !le32toh(cfg.max_discard_seg))
			BAD("max_discard_sectors %u / max_discard_seg %u: 0 with DISCARD; ",
			    le32toh(cfg.max_discard_sectors), le32toh(cfg.max_discard_seg));
	}
	if (uvirtio_driver_has_feature(&drv, VIRTIO_BLK_F_WRITE_ZEROES)) {
		n += (size_t)snprintf(line + n, sizeof(line) > n ? sizeof(line) - n : 0,
				      ", max_write_zeroes_sectors %u", le32toh(cfg.max_write_zeroes_sectors));
		if (!le32toh(cfg.max_write_zeroes_sectors) || !le32toh(cfg.max_write_zeroes_seg))
			BAD("max_write_zeroes_sectors %u / max_write_zeroes_seg %u: 0 with WRITE_ZEROES; ",
			    le32toh(cfg.max_write_zeroes_sectors), le32toh(cfg.max_write_zeroes_seg));
	}
#undef BAD
	uvirtio_driver_remove(&drv, NULL, NULL);
	check_disconnect(&conn);
	if (bad[0])
		return FAIL(c, "%s(%s)", bad, line);
	return PASS(c, "%s", line);
}

const struct check check_config_checks[] = {
	{ "version_1_offered", check_version_1, "the backend offers VIRTIO_F_VERSION_1" },
	{ "features_ok_sticks", check_features_ok, "FEATURES_OK sticks with every feature and with VERSION_1 alone" },
	{ "config_get_config", check_config_get_config, "protocol feature CONFIG offered and GET_CONFIG answered" },
	{ "config_values_sane", check_config_values, "capacity, blk_size, seg_max, size_max, num_queues, discard/write-zeroes limits" },
};

const size_t check_config_checks_count = sizeof(check_config_checks) / sizeof(check_config_checks[0]);
