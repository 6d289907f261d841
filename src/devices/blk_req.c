// SPDX-License-Identifier: MIT
/* Looking at a virtio-blk request: no threads and no I/O, so the rules can
 * be fuzzed on their own; and serving one request synchronously. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "blk_priv.h"

bool blk_has(const struct blk_dev *blk, unsigned bit)
{
	return uvirtio_device_has_feature(&blk->dev, bit);
}

/* Copy @len bytes that start @skip bytes into @iov to @dst. Return: bytes copied. */
static size_t gather(const struct iovec *iov, unsigned n, size_t skip, void *dst, size_t len)
{
	size_t got = 0;

	for (unsigned i = 0; i < n && got < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - got)
			l = len - got;
		memcpy((char *)dst + got, (const char *)iov[i].iov_base + skip, l);
		got += l;
		skip = 0;
	}
	return got;
}

static size_t scatter(const struct iovec *iov, unsigned n, const void *src, size_t len)
{
	size_t put = 0;

	for (unsigned i = 0; i < n && put < len; i++) {
		size_t l = iov[i].iov_len < len - put ? iov[i].iov_len : len - put;

		memcpy(iov[i].iov_base, (const char *)src + put, l);
		put += l;
	}
	return put;
}

/* spec, device operation: the status byte is the last byte of the writable
 * part. Trims it off the writable iovecs, which then hold only the data. */
static uint8_t *take_status_byte(struct iovec *in, unsigned *n)
{
	while (*n && !in[*n - 1].iov_len)
		(*n)--;
	if (!*n)
		return NULL;
	in[*n - 1].iov_len--;
	return (uint8_t *)in[*n - 1].iov_base + in[*n - 1].iov_len;
}

/* Point @p->data at the readable bytes after the header, trimming req->iov. */
static void data_after_header(struct uvirtio_req *req, struct blk_parsed *p)
{
	uint32_t skip = BLK_HDR_LEN;
	unsigned i = 0;

	while (i < req->n_out && skip >= req->iov[i].iov_len)
		skip -= (uint32_t)req->iov[i++].iov_len;
	if (i < req->n_out) {
		req->iov[i].iov_base = (char *)req->iov[i].iov_base + skip;
		req->iov[i].iov_len -= skip;
	}
	p->data = req->iov + i;
	p->ndata = req->n_out - i;
}

static enum blk_action answer(struct blk_parsed *p, uint8_t status, uint32_t data_written)
{
	p->answer = status;
	p->used = p->status ? data_written + 1 : 0;
	return ANSWER;
}

/* @sectors sectors from @sector lie within the disk (no overflow). */
static bool in_range(const struct blk_dev *blk, uint64_t sector, uint64_t sectors)
{
	return sector <= blk->capacity && sectors <= blk->capacity - sector;
}

static enum blk_action parse_data(struct blk_dev *blk, struct blk_parsed *p, uint64_t sector)
{
	/* spec: a read or write length is a multiple of 512 bytes. */
	if (p->len % BLK_SECTOR)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	if (!in_range(blk, sector, p->len / BLK_SECTOR))
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	p->off = sector * BLK_SECTOR;
	if (!p->len)
		return answer(p, VIRTIO_BLK_S_OK, 0);
	return p->type == VIRTIO_BLK_T_IN ? DO_READ : DO_WRITE;
}

static enum blk_action parse_segments(struct blk_dev *blk, struct uvirtio_req *req,
				  struct blk_parsed *p, struct virtio_blk_discard_write_zeroes *segs)
{
	bool discard = p->type == VIRTIO_BLK_T_DISCARD;
	uint32_t max_seg = le32toh(discard ? blk->config.max_discard_seg : blk->config.max_write_zeroes_seg);
	uint32_t max_sectors =
		le32toh(discard ? blk->config.max_discard_sectors : blk->config.max_write_zeroes_sectors);
	uint32_t dlen = req->out_len - BLK_HDR_LEN;

	if (!blk_has(blk, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return answer(p, VIRTIO_BLK_S_UNSUPP, 0);
	if (blk->read_only)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	if (req->in_len != 1)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	/* The segment count comes from the readable bytes: whole segments,
	 * 1 to max_*_seg of them. */
	if (dlen % BLK_SEG_LEN || dlen / BLK_SEG_LEN == 0 || dlen / BLK_SEG_LEN > max_seg)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	p->nsegs = dlen / BLK_SEG_LEN;
	for (unsigned i = 0; i < p->nsegs; i++) {
		/* Read once into our memory: the segment we check is the one we do. */
		struct virtio_blk_discard_write_zeroes *s = &segs[i];
		uint32_t flags, num;

		gather(req->iov, req->n_out, BLK_HDR_LEN + (size_t)i * BLK_SEG_LEN, s, BLK_SEG_LEN);
		flags = le32toh(s->flags);
		num = le32toh(s->num_sectors);
		/* spec: UNSUPP for an unknown flag, and for unmap on a discard. */
		if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			return answer(p, VIRTIO_BLK_S_UNSUPP, 0);
		if (discard && flags)
			return answer(p, VIRTIO_BLK_S_UNSUPP, 0);
		if (num > max_sectors || !in_range(blk, le64toh(s->sector), num))
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
	}
	return DO_DISCARD;
}

static void count_type(struct uvirtio_blk_dev_stats *st, uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN: blk_count(&st->reads, 1); break;
	case VIRTIO_BLK_T_OUT: blk_count(&st->writes, 1); break;
	case VIRTIO_BLK_T_FLUSH: blk_count(&st->flushes, 1); break;
	case VIRTIO_BLK_T_GET_ID: blk_count(&st->get_ids, 1); break;
	case VIRTIO_BLK_T_DISCARD: blk_count(&st->discards, 1); break;
	case VIRTIO_BLK_T_WRITE_ZEROES: blk_count(&st->write_zeroes, 1); break;
	default: blk_count(&st->other, 1); break;
	}
}

/* Decide what @req asks for. Reads guest memory (header, segments) once
 * each; writes it only for GET_ID, inside the writable iovecs. */
enum blk_action blk_parse(struct blk_dev *blk, struct uvirtio_req *req, struct blk_parsed *p,
			 struct virtio_blk_discard_write_zeroes *segs, struct uvirtio_blk_dev_stats *st)
{
	struct iovec *in = req->iov + req->n_out;
	unsigned n_in = req->n_in;
	struct virtio_blk_outhdr hdr;
	uint64_t sector;
	size_t id_len;

	memset(p, 0, sizeof(*p));
	p->status = take_status_byte(in, &n_in);
	/* The header is gathered however the driver split it. */
	if (req->out_len < BLK_HDR_LEN)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);
	gather(req->iov, req->n_out, 0, &hdr, BLK_HDR_LEN);
	p->type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	count_type(st, p->type);
	if (!p->status)
		return answer(p, VIRTIO_BLK_S_IOERR, 0);

	switch (p->type) {
	case VIRTIO_BLK_T_IN:
		/* A read carries no data to the device. */
		if (req->out_len != BLK_HDR_LEN)
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
		p->data = in;
		p->ndata = n_in;
		p->len = req->in_len - 1;
		return parse_data(blk, p, sector);
	case VIRTIO_BLK_T_OUT:
		if (blk->read_only)
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
		/* A write takes nothing back but its status. */
		if (req->in_len != 1)
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
		data_after_header(req, p);
		p->len = req->out_len - BLK_HDR_LEN;
		return parse_data(blk, p, sector);
	case VIRTIO_BLK_T_FLUSH:
		if (req->out_len != BLK_HDR_LEN || req->in_len != 1)
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
		return DO_FLUSH;
	case VIRTIO_BLK_T_GET_ID:
		if (req->out_len != BLK_HDR_LEN)
			return answer(p, VIRTIO_BLK_S_IOERR, 0);
		/* As much of the 20-byte serial as there is room for. */
		id_len = req->in_len - 1 < VIRTIO_BLK_ID_BYTES ? req->in_len - 1 : VIRTIO_BLK_ID_BYTES;
		return answer(p, VIRTIO_BLK_S_OK, (uint32_t)scatter(in, n_in, blk->serial, id_len));
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_segments(blk, req, p, segs);
	default:
		return answer(p, VIRTIO_BLK_S_UNSUPP, 0);
	}
}

bool blk_writeback(const struct blk_dev *blk)
{
	return __atomic_load_n(&blk->writeback, __ATOMIC_ACQUIRE);
}

/* Write the status byte @p->answer decided; count the answer.
 * Return: the used length. */
uint32_t blk_write_status(struct blk_parsed *p, struct uvirtio_blk_dev_stats *st)
{
	if (!p->status) {
		blk_count(&st->no_status, 1);
		return 0;
	}
	if (p->answer == VIRTIO_BLK_S_IOERR)
		blk_count(&st->ioerr, 1);
	else if (p->answer == VIRTIO_BLK_S_UNSUPP)
		blk_count(&st->unsupp, 1);
	*p->status = p->answer;
	return p->used;
}

/* A request whose I/O ended with @err (0 or a negative errno), having
 * written @data bytes into the writable part. */
uint32_t blk_finish(struct blk_parsed *p, struct uvirtio_blk_dev_stats *st, int err, uint32_t data)
{
	answer(p, err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, err ? 0 : data);
	return blk_write_status(p, st);
}

/* Discard or write zeroes, done on the calling thread. */
int blk_do_discard(struct blk_dev *blk, struct blk_parsed *p,
		      const struct virtio_blk_discard_write_zeroes *segs)
{
	int ret = blk_backend_discard_sync(blk, p->type, segs, p->nsegs);

	/* Writethrough: zeroes are data, durable before the request completes. */
	if (!ret && p->type == VIRTIO_BLK_T_WRITE_ZEROES && !blk_writeback(blk))
		ret = blk_backend_flush_sync(blk);
	return ret;
}

uint32_t uvirtio_blk_dev_serve_sync(struct uvirtio_blk_dev *public_blk, struct uvirtio_req *req,
				    struct uvirtio_blk_dev_stats *stats)
{
	struct blk_dev *blk = blk_dev_of(public_blk);
	struct virtio_blk_discard_write_zeroes segs[BLK_DISCARD_SEG_LIMIT];
	struct uvirtio_blk_dev_stats scratch;
	struct blk_parsed p;
	bool dsync;
	int err = 0;

	if (!stats) {
		memset(&scratch, 0, sizeof(scratch));
		stats = &scratch;
	}
	switch (blk_parse(blk, req, &p, segs, stats)) {
	case ANSWER:
		return blk_write_status(&p, stats);
	case DO_READ:
	case DO_WRITE:
		dsync = p.type == VIRTIO_BLK_T_OUT && !blk_writeback(blk);
		err = blk_backend_rw_sync(blk, p.type == VIRTIO_BLK_T_OUT, p.data, p.ndata, p.off, p.len,
					  dsync, stats);
		if (!err && dsync)
			blk_count(&stats->writethrough, 1);
		if (!err)
			blk_count(p.type == VIRTIO_BLK_T_IN ? &stats->bytes_read : &stats->bytes_written,
				  p.len);
		return blk_finish(&p, stats, err, p.type == VIRTIO_BLK_T_IN ? p.len : 0);
	case DO_FLUSH:
		err = blk_backend_flush_sync(blk);
		break;
	case DO_DISCARD:
		err = blk_do_discard(blk, &p, segs);
		break;
	}
	return blk_finish(&p, stats, err, 0);
}
