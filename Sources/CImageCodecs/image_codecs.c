#include "image_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

static void set_message(char *message, const char *text) {
    if (message) {
        snprintf(message, AC_MESSAGE_SIZE, "%s", text);
    }
}

void ac_free(void *pointer) { free(pointer); }

static int too_large(int64_t width, int64_t height, int64_t max_pixels, char *message) {
    if (width <= 0 || height <= 0) {
        set_message(message, "image has zero width or height");
        return AC_CORRUPT;
    }
    if (max_pixels > 0 && width * height > max_pixels) {
        snprintf(message, AC_MESSAGE_SIZE,
                 "image is %lld x %lld = %lld pixels, over the limit of %lld pixels",
                 (long long)width, (long long)height, (long long)(width * height),
                 (long long)max_pixels);
        return AC_TOO_LARGE;
    }
    return AC_OK;
}

/* ---------------------------------------------------------------- PNG decode */

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char *message;
} png_reader;

static void png_error_handler(png_structp png, png_const_charp text) {
    png_reader *reader = (png_reader *)png_get_error_ptr(png);
    if (reader && reader->message && reader->message[0] == 0) {
        set_message(reader->message, text);
    }
    png_longjmp(png, 1);
}

static void png_warning_handler(png_structp png, png_const_charp text) {
    (void)png;
    (void)text; /* ancillary-chunk problems (e.g. a bad tEXt CRC) do not spoil the pixels */
}

static void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
    png_reader *reader = (png_reader *)png_get_io_ptr(png);
    if (count > reader->size - reader->offset) {
        png_error(png, "file is truncated");
    }
    memcpy(out, reader->data + reader->offset, count);
    reader->offset += count;
}

int ac_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, ac_image *out,
                  char message[AC_MESSAGE_SIZE]) {
    if (!out || (!data && size)) {
        set_message(message, "invalid argument");
        return AC_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    if (message) message[0] = 0;
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_message(message, "not a PNG file (bad signature)");
        return AC_NOT_RECOGNIZED;
    }
    png_reader reader = {data, size, 0, message};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_error_handler,
                                             png_warning_handler);
    if (!png) {
        set_message(message, "out of memory");
        return AC_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    /* volatile: modified after setjmp and read after a longjmp */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = AC_CORRUPT;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(message, "out of memory");
        return AC_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (message && message[0] == 0) set_message(message, "corrupt PNG data");
        return status;
    }
    png_set_read_fn(png, &reader, png_read_memory);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    int limit = too_large(width, height, max_pixels, message);
    if (limit != AC_OK) {
        status = limit;
        png_longjmp(png, 1);
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || rowbytes != (size_t)width * (size_t)channels) {
        set_message(message, "unsupported PNG pixel layout");
        png_longjmp(png, 1);
    }
    pixels = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) {
        status = AC_NO_MEMORY;
        set_message(message, "out of memory");
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* reads up to IEND, so a file cut after its pixels still fails */

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->source_channels = channels;
    out->pixels = pixels;
    return AC_OK;
}

/* ---------------------------------------------------------------- PNG encode */

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    int failed;
} png_writer;

static void png_write_memory(png_structp png, png_bytep bytes, png_size_t count) {
    png_writer *writer = (png_writer *)png_get_io_ptr(png);
    if (writer->size + count > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity : 4096;
        while (capacity < writer->size + count) capacity *= 2;
        uint8_t *grown = realloc(writer->data, capacity);
        if (!grown) {
            writer->failed = 1;
            png_error(png, "out of memory");
        }
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, bytes, count);
    writer->size += count;
}

static void png_flush_memory(png_structp png) { (void)png; }

int ac_png_encode(const uint8_t *samples, int32_t width, int32_t height, int32_t color_type,
                  int32_t bit_depth, int32_t interlace, const uint8_t *palette,
                  int32_t palette_count, const uint8_t *trns, int32_t trns_count,
                  int32_t compression_level, uint8_t **out, size_t *out_size,
                  char message[AC_MESSAGE_SIZE]) {
    if (message) message[0] = 0;
    if (!samples || !out || !out_size || width <= 0 || height <= 0) {
        set_message(message, "invalid argument");
        return AC_INVALID_ARGUMENT;
    }
    int per_pixel;
    switch (color_type) {
    case 0: per_pixel = 1; break;
    case 2: per_pixel = 3; break;
    case 3: per_pixel = 1; break;
    case 4: per_pixel = 2; break;
    case 6: per_pixel = 4; break;
    default: set_message(message, "unsupported PNG color type"); return AC_INVALID_ARGUMENT;
    }
    size_t rowbytes = ((size_t)width * per_pixel * bit_depth + 7) / 8;
    png_writer writer = {NULL, 0, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) return AC_NO_MEMORY;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return AC_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(writer.data);
        set_message(message, writer.failed ? "out of memory" : "PNG encoding failed");
        return writer.failed ? AC_NO_MEMORY : AC_INVALID_ARGUMENT;
    }
    png_set_write_fn(png, &writer, png_write_memory, png_flush_memory);
    png_set_compression_level(png, compression_level);
    /* Fast levels also skip libpng's per-row trial of all five filters: measured on anomap's
       heatmaps and overlays, "Up" alone costs 9% in size and saves a fifth of the encode time. */
    if (compression_level <= 2) png_set_filter(png, 0, PNG_FILTER_UP);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == 3 && palette && palette_count > 0) {
        png_color entries[256];
        int n = palette_count > 256 ? 256 : palette_count;
        for (int i = 0; i < n; i++) {
            entries[i].red = palette[3 * i];
            entries[i].green = palette[3 * i + 1];
            entries[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, entries, n);
    }
    if (trns && trns_count > 0) {
        if (color_type == 3) {
            png_set_tRNS(png, info, trns, trns_count, NULL);
        } else {
            png_color_16 key;
            memset(&key, 0, sizeof(key));
            if (color_type == 0 && trns_count >= 2) key.gray = (png_uint_16)(trns[0] << 8 | trns[1]);
            if (color_type == 2 && trns_count >= 6) {
                key.red = (png_uint_16)(trns[0] << 8 | trns[1]);
                key.green = (png_uint_16)(trns[2] << 8 | trns[3]);
                key.blue = (png_uint_16)(trns[4] << 8 | trns[5]);
            }
            png_set_tRNS(png, info, NULL, 0, &key);
        }
    }
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++) {
        for (int32_t y = 0; y < height; y++) {
            png_write_row(png, (png_const_bytep)(samples + (size_t)y * rowbytes));
        }
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_size = writer.size;
    return AC_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *message;
} jpeg_guard;

static void jpeg_error_exit(j_common_ptr cinfo) {
    jpeg_guard *guard = (jpeg_guard *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    if (guard->message && guard->message[0] == 0) set_message(guard->message, text);
    longjmp(guard->jump, 1);
}

/* A warning means truncated or corrupt entropy data; libjpeg would fill the rest with
 * gray, which an anomaly detector would report as a huge defect. Treat it as an error. */
static void jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0) {
        jpeg_error_exit(cinfo);
    }
}

static void jpeg_silence(j_common_ptr cinfo) { (void)cinfo; }

static int is_jpeg(const uint8_t *data, size_t size) {
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

int ac_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, ac_image *out,
                   char message[AC_MESSAGE_SIZE]) {
    return ac_jpeg_decode_scaled(data, size, max_pixels, 0, 0, out, message);
}

int ac_jpeg_decode_scaled(const uint8_t *data, size_t size, int64_t max_pixels, int32_t min_width,
                          int32_t min_height, ac_image *out, char message[AC_MESSAGE_SIZE]) {
    if (!out || (!data && size)) {
        set_message(message, "invalid argument");
        return AC_INVALID_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    if (message) message[0] = 0;
    if (!is_jpeg(data, size)) {
        set_message(message, "not a JPEG file (bad signature)");
        return AC_NOT_RECOGNIZED;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_guard guard;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    uint8_t *volatile exif = NULL;
    volatile int status = AC_CORRUPT;
    cinfo.err = jpeg_std_error(&guard.base);
    guard.base.error_exit = jpeg_error_exit;
    guard.base.emit_message = jpeg_emit_message;
    guard.base.output_message = jpeg_silence;
    guard.message = message;
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        free(exif);
        memset(out, 0, sizeof(*out));
        if (message && message[0] == 0) set_message(message, "corrupt JPEG data");
        return status;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    int limit = too_large(cinfo.image_width, cinfo.image_height, max_pixels, message);
    if (limit != AC_OK) {
        status = limit;
        longjmp(guard.jump, 1);
    }
    /* Bound libjpeg's own working memory (progressive coefficient buffers) as well. */
    cinfo.mem->max_memory_to_use = 64L * 1024 * 1024 +
        (long)cinfo.image_width * (long)cinfo.image_height * 8L;

    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            exif = malloc(m->data_length - 6);
            if (exif) {
                memcpy(exif, m->data + 6, m->data_length - 6);
                out->exif_size = m->data_length - 6;
            }
            break;
        }
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    out->source_channels = cinfo.num_components;
    cinfo.out_color_space = cmyk ? JCS_CMYK : (gray ? JCS_GRAYSCALE : JCS_RGB);
    out->source_width = (int32_t)cinfo.image_width;
    out->source_height = (int32_t)cinfo.image_height;
    /* DCT scaling: the smallest of 1/8, 1/4, 1/2 and 1 whose output still covers min_width x min_height (libjpeg
     * rounds scaled sizes up). The inverse DCT then skips the coefficients it would discard. */
    if (min_width > 0 || min_height > 0) {
        for (unsigned int n = 1; n <= 8; n *= 2) {
            unsigned long w = ((unsigned long)cinfo.image_width * n + 7) / 8;
            unsigned long h = ((unsigned long)cinfo.image_height * n + 7) / 8;
            if (n == 8 || (w >= (unsigned long)min_width && h >= (unsigned long)min_height)) {
                cinfo.scale_num = n;
                cinfo.scale_denom = 8;
                break;
            }
        }
    }
    jpeg_start_decompress(&cinfo);

    int in_channels = cinfo.output_components;
    int channels = gray ? 1 : 3;
    size_t width = cinfo.output_width, height = cinfo.output_height;
    pixels = malloc(width * height * channels);
    row = malloc(width * in_channels);
    if (!pixels || !row) {
        status = AC_NO_MEMORY;
        set_message(message, "out of memory");
        longjmp(guard.jump, 1);
    }
    /* Adobe CMYK JPEGs store inverted ink values (Photoshop convention). */
    int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW target = cmyk ? (JSAMPROW)row : (JSAMPROW)(pixels + y * width * channels);
        jpeg_read_scanlines(&cinfo, &target, 1);
        if (cmyk) {
            uint8_t *dst = pixels + y * width * 3;
            for (size_t x = 0; x < width; x++) {
                int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
                if (!inverted) {
                    c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k;
                }
                /* with "white ink" values w = 255 - ink: RGB = w_colour * w_black / 255 */
                dst[3 * x] = (uint8_t)((c * k + 127) / 255);
                dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
                dst[3 * x + 2] = (uint8_t)((yy * k + 127) / 255);
            }
        }
    }
    out->progressive = cinfo.progressive_mode ? 1 : 0;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->pixels = pixels;
    out->exif = exif;
    return AC_OK;
}

int ac_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                   int32_t quality, int32_t flags, const uint8_t *exif, size_t exif_size,
                   uint8_t **out, size_t *out_size, char message[AC_MESSAGE_SIZE]) {
    if (message) message[0] = 0;
    if (!pixels || !out || !out_size || width <= 0 || height <= 0 ||
        (channels != 1 && channels != 3 && channels != 4) ||
        exif_size > 65000) {
        set_message(message, "invalid argument");
        return AC_INVALID_ARGUMENT;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_guard guard;
    unsigned char *volatile buffer = NULL;
    unsigned long buffer_size = 0;
    uint8_t *volatile segment = NULL;
    cinfo.err = jpeg_std_error(&guard.base);
    guard.base.error_exit = jpeg_error_exit;
    guard.base.output_message = jpeg_silence;
    guard.message = message;
    if (setjmp(guard.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        free(segment);
        return AC_INVALID_ARGUMENT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : (channels == 3 ? JCS_RGB : JCS_CMYK);
    jpeg_set_defaults(&cinfo);
    if (channels == 4 && (flags & AC_JPEG_YCCK)) jpeg_set_colorspace(&cinfo, JCS_YCCK);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (flags & AC_JPEG_PROGRESSIVE) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    if (exif && exif_size > 0) {
        segment = malloc(exif_size + 6);
        if (!segment) longjmp(guard.jump, 1);
        memcpy(segment, "Exif\0\0", 6);
        memcpy(segment + 6, exif, exif_size);
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, segment, (unsigned int)(exif_size + 6));
        free(segment);
        segment = NULL;
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = buffer_size;
    return AC_OK;
}
