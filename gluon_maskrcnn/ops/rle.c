/* COCO run-length encoding of instance masks pasted into their boxes.
 *
 * gm_encode_windows: detection i's mask is the window rows x cols (rows[i], cols[i]) of a
 * float32 array (row-major, row stride strides[i] elements) starting at windows[i], thresholded
 * (a pixel is one where value > threshold), placed with its top-left pixel at (x0[i], y0[i])
 * inside a height x width image that is zero elsewhere. For each detection it writes COCO's
 * compressed RLE string (the characters pycocotools.mask.encode gives) to out, one after
 * another; ends[i] is the offset after string i. Returns 0, -1 when `capacity` bytes are
 * not enough, -2 when `events_capacity` is.
 *
 * Runs alternate zeros and ones in column-major order, starting with zeros. Outside the window
 * every pixel is zero, so a run changes value only where a window pixel differs from the one
 * above it in its column (the rows above and below the window count as zero), except that a
 * window spanning the image's height continues from a column's bottom into the next column's
 * top. The changes are found row by row, so that the window is read in memory order.
 * Each count is written as COCO does: its difference from the count two before (from the
 * fourth on), in 5-bit groups, each a character from 48 on, bit 5 set while more follow.
 */
#include <stdint.h>
#include <string.h>

typedef struct {
  char *out;
  long pos, capacity;
  long count_index, before_last, last;
} Writer;

static int write_count(Writer *wr, long count) {
  long x = count;
  if (wr->count_index > 2) x -= wr->before_last;
  int more = 1;
  while (more) {
    char c = (char)(x & 0x1f);
    x >>= 5;
    more = (c & 0x10) ? x != -1 : x != 0;
    if (more) c |= 0x20;
    if (wr->pos >= wr->capacity) return -1;
    wr->out[wr->pos++] = (char)(c + 48);
  }
  wr->before_last = wr->last;
  wr->last = count;
  wr->count_index++;
  return 0;
}

/* The value changes of one thresholded window, found in one pass row by row (contiguous
 * reads), then listed column by column: events[starts[c] .. starts[c + 1]) are the rows r
 * where the value differs from the row above (row -1 and row h count as zero). `found` holds
 * them in row order first (column, row pairs). Returns the number of events, or -1 when the
 * scratch space is too small. */
static long window_changes(const float *window, long stride, int h, int w, float threshold,
                           uint8_t *previous, long *starts, int *events, int *found,
                           long events_capacity) {
  long count = 0;
  uint8_t *changed = previous + w; /* the second half of the scratch row */
  for (int c = 0; c <= w; c++) starts[c] = 0;
  for (int c = 0; c < w; c++) previous[c] = 0;
  for (int r = 0; r <= h; r++) {
    uint8_t any = 0;
    if (r < h) { /* one comparison pass the compiler vectorises, then the (few) changes */
      const float *row = window + (long)r * stride;
      for (int c = 0; c < w; c++) {
        const uint8_t v = row[c] > threshold;
        changed[c] = v ^ previous[c];
        previous[c] = v;
        any |= changed[c];
      }
    } else { /* below the window: zero */
      for (int c = 0; c < w; c++) {
        changed[c] = previous[c];
        any |= changed[c];
      }
    }
    if (!any) continue;
    for (int c = 0; c < w; c++) {
      if (c + 8 <= w) { /* skip 8 unchanged columns at a time */
        uint64_t word;
        memcpy(&word, changed + c, 8);
        if (!word) {
          c += 7;
          continue;
        }
      }
      if (!changed[c]) continue;
      if (count >= events_capacity) return -1;
      found[2 * count] = c;
      found[2 * count + 1] = r;
      count++;
      starts[c + 1]++;
    }
  }
  for (int c = 0; c < w; c++) starts[c + 1] += starts[c];
  long *next = starts + w + 1; /* the next free slot of each column */
  for (int c = 0; c < w; c++) next[c] = starts[c];
  for (long k = 0; k < count; k++) events[next[found[2 * k]]++] = found[2 * k + 1];
  return count;
}

/* scratch: `previous` (2 * max_cols bytes), `starts` (2 * max_cols + 2 longs), `events`
 * (events_capacity ints), `found` (2 * events_capacity ints). */
int gm_encode_windows(int n, const float *const *windows, const long *strides, const int *rows,
                      const int *cols, const int *x0, const int *y0, float threshold, long height,
                      long width, char *out, long capacity, long *ends, uint8_t *previous,
                      long *starts, int *events, int *found, long events_capacity) {
  Writer wr = {out, 0, capacity, 0, 0, 0};
  const long total = height * width;
  for (int i = 0; i < n; i++) {
    const int h = rows[i], w = cols[i];
    wr.count_index = 0;
    wr.before_last = wr.last = 0;
    if (window_changes(windows[i], strides[i], h, w, threshold, previous, starts, events, found,
                       events_capacity) < 0)
      return -2;
    /* the changes' image positions, in order; a change at the bottom of a full-height column
     * and one at the top of the next are one place: they cancel (the run goes on) */
    long run_start = 0, held = -1;
    for (int c = 0; c < w; c++) {
      const long column = (long)(x0[i] + c) * height + y0[i];
      for (long k = starts[c]; k < starts[c + 1]; k++) {
        const long position = column + events[k];
        if (held == position) { held = -1; continue; }
        if (held >= 0) {
          if (write_count(&wr, held - run_start) < 0) return -1;
          run_start = held;
        }
        held = position;
      }
    }
    if (held >= 0 && held < total) {
      if (write_count(&wr, held - run_start) < 0) return -1;
      run_start = held;
    }
    if (write_count(&wr, total - run_start) < 0) return -1;
    ends[i] = wr.pos;
  }
  return 0;
}
