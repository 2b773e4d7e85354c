/* Image codec shim: every libpng/libjpeg call sits behind setjmp here, so a corrupt file
 * becomes a status code and a message instead of a longjmp through Swift frames. */
#ifndef ANOMAP_IMAGE_CODECS_H
#define ANOMAP_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

#define AC_MESSAGE_SIZE 200

enum ac_status {
    AC_OK = 0,
    AC_NOT_RECOGNIZED = 1,   /* no PNG/JPEG signature */
    AC_CORRUPT = 2,          /* the codec library reported an error or a warning */
    AC_TOO_LARGE = 3,        /* declared size exceeds the pixel limit */
    AC_NO_MEMORY = 4,
    AC_INVALID_ARGUMENT = 5,
};

/* A decoded image: 8-bit samples, interleaved, rows top to bottom, no padding.
 * channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Free pixels and exif with ac_free. */
typedef struct {
    int32_t width;
    int32_t height;
    int32_t channels;
    uint8_t *pixels;
    uint8_t *exif;           /* TIFF payload of the JPEG APP1 "Exif" segment, or NULL */
    size_t exif_size;
    int32_t progressive;     /* JPEG only: 1 when progressive */
    int32_t source_channels; /* channels as stored in the file (JPEG CMYK: 4) */
    int32_t source_width;    /* JPEG only: size as stored, before DCT scaling */
    int32_t source_height;
} ac_image;

/* Decodes a PNG from memory. Palette, low bit depths and tRNS are expanded; 16-bit samples
 * are scaled to 8 bits with rounding; interlaced images are de-interlaced. */
int ac_png_decode(const uint8_t *data, size_t size, int64_t max_pixels, ac_image *out,
                  char message[AC_MESSAGE_SIZE]);

/* Decodes a JPEG from memory. Gray stays 1 channel; YCbCr, RGB, CMYK and YCCK become RGB.
 * Any libjpeg warning (truncated or corrupt data) is an error. */
int ac_jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels, ac_image *out,
                   char message[AC_MESSAGE_SIZE]);

/* Decodes a JPEG at the smallest n/8 of its size (n = 1..8, libjpeg's DCT scaling) whose
 * width and height are at least min_width and min_height (0: no minimum, full size). */
int ac_jpeg_decode_scaled(const uint8_t *data, size_t size, int64_t max_pixels, int32_t min_width,
                          int32_t min_height, ac_image *out, char message[AC_MESSAGE_SIZE]);

/* Encodes a PNG into a malloc'd buffer (free with ac_free).
 * samples: rows of packed samples exactly as PNG stores them for (color_type, bit_depth):
 * 16-bit samples big-endian, sub-byte samples packed MSB first, each row byte-aligned.
 * color_type: PNG codes 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
 * palette: RGB triples (palette_count of them); trns: tRNS bytes (for palette: alpha per
 * entry; for gray/RGB: the 2- or 6-byte key as PNG stores it). interlace: 0 or 1 (Adam7). */
int ac_png_encode(const uint8_t *samples, int32_t width, int32_t height, int32_t color_type,
                  int32_t bit_depth, int32_t interlace, const uint8_t *palette,
                  int32_t palette_count, const uint8_t *trns, int32_t trns_count,
                  int32_t compression_level, uint8_t **out, size_t *out_size,
                  char message[AC_MESSAGE_SIZE]);

#define AC_JPEG_PROGRESSIVE 1
#define AC_JPEG_YCCK 2

/* Encodes 8-bit gray (1), RGB (3) or CMYK (4, stored as given, with an Adobe marker) pixels
 * as JPEG into a malloc'd buffer. flags: AC_JPEG_PROGRESSIVE, AC_JPEG_YCCK (CMYK input only).
 * exif: optional TIFF payload written as an APP1 "Exif" segment. */
int ac_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                   int32_t quality, int32_t flags, const uint8_t *exif, size_t exif_size,
                   uint8_t **out, size_t *out_size, char message[AC_MESSAGE_SIZE]);

/* Frees a buffer returned by this shim. */
void ac_free(void *pointer);

#endif
