// Fused area-resize + colour conversion + normalisation (see preprocess.hpp).
//
// The resize is separable: for each output row, a vertical pass sums the contributing input
// rows into a float row (contiguous, so the compiler vectorises it), then a horizontal pass
// with precomputed weights turns that row into `size` output pixels, written straight into
// the output layout. Each input row is read about once, which is what makes it one pass.
#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

// Vectorised clones for AVX-512 and AVX2/FMA CPUs with a plain x86-64 fallback, chosen at load time, so a
// wheel built without -march=native still uses the SIMD the CPU has. aarch64 has NEON as its
// baseline, so the plain build is already vectorised there.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MPOX_NATIVE_ARCH)
#define MPOX_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MPOX_SIMD
#endif

namespace mpox {
namespace {

constexpr int kMaxUnrolledTaps = 12;
using v4f = float __attribute__((vector_size(16)));

#define MPOX_INLINE inline __attribute__((always_inline))

// acc[i] = sum_k w[k] * rows[k][i]: one sweep over the row for all T input rows, so the
// accumulator is written once (and never read back) per output row.
template <int T>
MPOX_INLINE void vertical_fixed(float* acc, const std::uint8_t* const* rows, const float* w, int n) {
    for (int i = 0; i < n; ++i) {
        float v = 0.f;
        for (int k = 0; k < T; ++k) v += w[k] * static_cast<float>(rows[k][i]);
        acc[i] = v;
    }
}

MPOX_SIMD void vertical_pass(float* acc, const std::uint8_t* const* rows, const float* w, int taps, int n) {
    switch (taps) {
        case 1: return vertical_fixed<1>(acc, rows, w, n);
        case 2: return vertical_fixed<2>(acc, rows, w, n);
        case 3: return vertical_fixed<3>(acc, rows, w, n);
        case 4: return vertical_fixed<4>(acc, rows, w, n);
        case 5: return vertical_fixed<5>(acc, rows, w, n);
        case 6: return vertical_fixed<6>(acc, rows, w, n);
        case 7: return vertical_fixed<7>(acc, rows, w, n);
        case 8: return vertical_fixed<8>(acc, rows, w, n);
        default: break;
    }
    // Tall ROIs shrunk a lot: eight rows at a time, then add the rest.
    vertical_fixed<8>(acc, rows, w, n);
    for (int k = 8; k < taps; ++k) {
        const std::uint8_t* r = rows[k];
        const float wk = w[k];
        for (int i = 0; i < n; ++i) acc[i] += wk * static_cast<float>(r[i]);
    }
}

// Horizontal pass: each output pixel is a weighted sum of `T` packed BGR pixels of the
// accumulator row, summed as 4-lane vectors (the 4th lane is the next pixel's blue: ignored).
// The accumulator row carries one float of padding so the last 4-lane load stays inside it.
template <int T, class Sink>
MPOX_INLINE void horizontal_fixed(const float* acc, const int* start, const float* weight, int taps,
                                  int size, Sink sink) {
    const int t = T > 0 ? T : taps;
    for (int x = 0; x < size; ++x) {
        const float* src = acc + 3 * start[x];
        const float* w = weight + x * t;
        v4f s = {0.f, 0.f, 0.f, 0.f};
        for (int k = 0; k < t; ++k) {
            v4f p;
            std::memcpy(&p, src + 3 * k, sizeof p);
            s += w[k] * p;
        }
        sink(x, s);
    }
}

template <class Sink>
MPOX_INLINE void horizontal_pass(const float* acc, const AxisWeights& ax, int size, Sink sink) {
    const int* st = ax.start.data();
    const float* w = ax.weight.data();
    switch (ax.taps) {
        case 1: return horizontal_fixed<1>(acc, st, w, 1, size, sink);
        case 2: return horizontal_fixed<2>(acc, st, w, 2, size, sink);
        case 3: return horizontal_fixed<3>(acc, st, w, 3, size, sink);
        case 4: return horizontal_fixed<4>(acc, st, w, 4, size, sink);
        case 5: return horizontal_fixed<5>(acc, st, w, 5, size, sink);
        case 6: return horizontal_fixed<6>(acc, st, w, 6, size, sink);
        case 7: return horizontal_fixed<7>(acc, st, w, 7, size, sink);
        case 8: return horizontal_fixed<8>(acc, st, w, 8, size, sink);
        case 9: return horizontal_fixed<9>(acc, st, w, 9, size, sink);
        case 10: return horizontal_fixed<10>(acc, st, w, 10, size, sink);
        case 11: return horizontal_fixed<11>(acc, st, w, 11, size, sink);
        case 12: return horizontal_fixed<12>(acc, st, w, 12, size, sink);
        default: return horizontal_fixed<0>(acc, st, w, ax.taps, size, sink);
    }
}

// BGR averages (0..255) -> normalised RGB planes.
MPOX_SIMD void horizontal_to_planes(const float* acc, const AxisWeights& ax, int size, const float scale[3],
                                    const float bias[3], float* r, float* g, float* b) {
    horizontal_pass(acc, ax, size, [&](int x, v4f s) {
        b[x] = s[0] * scale[2] + bias[2];
        g[x] = s[1] * scale[1] + bias[1];
        r[x] = s[2] * scale[0] + bias[0];
    });
}

MPOX_INLINE std::uint8_t round_u8(float v) {
    v += 0.5f;
    return static_cast<std::uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
}

MPOX_SIMD void horizontal_to_rgb(const float* acc, const AxisWeights& ax, int size, std::uint8_t* out) {
    horizontal_pass(acc, ax, size, [&](int x, v4f s) {
        out[3 * x] = round_u8(s[2]);
        out[3 * x + 1] = round_u8(s[1]);
        out[3 * x + 2] = round_u8(s[0]);
    });
}

// Scratch buffers reused across calls on the same thread: no allocation per frame.
struct Scratch {
    std::vector<float> acc;
    std::vector<std::uint8_t> rows;  // converted YUV rows, one per input row in flight
};
Scratch& scratch() {
    thread_local Scratch s;
    return s;
}

// The shared resampler. row(i) returns packed BGR bytes of ROI row i; emit(oy, acc) turns the
// vertically resampled row of output row oy into output pixels.
template <class RowFn, class EmitFn>
void resample(int w, int h, int size, RowFn&& row, EmitFn emit) {
    const AxisWeights ay = area_weights(h, size);
    Scratch& s = scratch();
    s.acc.resize(static_cast<std::size_t>(w) * 3 + 1);
    std::vector<const std::uint8_t*> rows(ay.taps);
    for (int oy = 0; oy < size; ++oy) {
        // Only the rows that weigh something: the padded taps of the table would cost a full
        // pass over a row each.
        const float* wy = ay.weight.data() + static_cast<std::size_t>(oy) * ay.taps;
        int k0 = 0, k1 = ay.taps;
        while (k1 > 1 && wy[k1 - 1] == 0.f) --k1;
        while (k0 + 1 < k1 && wy[k0] == 0.f) ++k0;
        for (int k = k0; k < k1; ++k) rows[k - k0] = row(ay.start[oy] + k);
        vertical_pass(s.acc.data(), rows.data(), wy + k0, k1 - k0, w * 3);
        emit(oy, s.acc.data());
    }
}

template <class RowFn>
void to_f32(int w, int h, int size, RowFn&& row, const float mean[3], const float std[3], float* out) {
    float scale[3], bias[3];
    for (int c = 0; c < 3; ++c) {
        scale[c] = 1.f / (255.f * std[c]);
        bias[c] = -mean[c] / std[c];
    }
    const AxisWeights ax = area_weights(w, size);
    const std::size_t plane = static_cast<std::size_t>(size) * size;
    resample(w, h, size, row, [&](int oy, const float* acc) {
        float* r = out + static_cast<std::size_t>(oy) * size;
        horizontal_to_planes(acc, ax, size, scale, bias, r, r + plane, r + 2 * plane);
    });
}

template <class RowFn>
void to_u8(int w, int h, int size, RowFn&& row, std::uint8_t* out) {
    const AxisWeights ax = area_weights(w, size);
    resample(w, h, size, row, [&](int oy, const float* acc) {
        horizontal_to_rgb(acc, ax, size, out + static_cast<std::size_t>(oy) * size * 3);
    });
}

// Converts YUV rows to BGR on demand into a ring of `capacity` rows keyed by row index. The
// resampler asks for a window of consecutive rows no longer than the ring, so no row of the
// current window is ever evicted, and rows shared by two windows are converted once.
struct YuvRows {
    const Yuv420View& frame;
    Roi roi;
    int capacity;
    std::vector<std::uint8_t>& buf;
    std::vector<int> held;
    YuvRows(const Yuv420View& f, Roi r, int cap, std::vector<std::uint8_t>& b)
        : frame(f), roi(r), capacity(cap), buf(b), held(cap, -1) {
        buf.resize(static_cast<std::size_t>(cap) * r.w * 3);
    }
    const std::uint8_t* operator()(int i) {
        const int slot = i % capacity;
        std::uint8_t* dst = buf.data() + static_cast<std::size_t>(slot) * roi.w * 3;
        if (held[slot] != i) {
            yuv_row_to_bgr(frame, roi.y + i, roi.x, roi.w, dst);
            held[slot] = i;
        }
        return dst;
    }
};

inline std::uint8_t clamp_u8(int v) { return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

}  // namespace

AxisWeights area_weights(int in_size, int out_size) {
    AxisWeights ax;
    const double scale = static_cast<double>(in_size) / out_size;
    std::vector<int> first(out_size), last(out_size);
    for (int o = 0; o < out_size; ++o) {
        const double a = o * scale, b = (o + 1) * scale;
        first[o] = std::min(in_size - 1, static_cast<int>(std::floor(a)));
        last[o] = std::max(first[o] + 1, std::min(in_size, static_cast<int>(std::ceil(b - 1e-9))));
        ax.taps = std::max(ax.taps, last[o] - first[o]);
    }
    ax.start.resize(out_size);
    ax.weight.assign(static_cast<std::size_t>(out_size) * ax.taps, 0.f);
    for (int o = 0; o < out_size; ++o) {
        const double a = o * scale, b = (o + 1) * scale;
        // Keep the window [start, start + taps) inside the input; extra taps weigh zero.
        const int start = std::min(first[o], in_size - ax.taps);
        ax.start[o] = start;
        double total = 0.0;
        std::vector<double> w(ax.taps, 0.0);
        for (int i = first[o]; i < last[o]; ++i) {
            w[i - start] = std::max(0.0, std::min(b, i + 1.0) - std::max(a, static_cast<double>(i)));
            total += w[i - start];
        }
        for (int k = 0; k < ax.taps; ++k) {
            ax.weight[static_cast<std::size_t>(o) * ax.taps + k] = static_cast<float>(w[k] / total);
        }
    }
    return ax;
}

void preprocess_bgr_f32(const BgrView& roi, int size, const float mean[3], const float std[3],
                        float* out) {
    to_f32(roi.width, roi.height, size,
           [&](int i) { return roi.data + i * roi.row_stride; }, mean, std, out);
}

void preprocess_bgr_u8(const BgrView& roi, int size, std::uint8_t* out) {
    to_u8(roi.width, roi.height, size, [&](int i) { return roi.data + i * roi.row_stride; }, out);
}

void preprocess_yuv_f32(const Yuv420View& frame, Roi roi, int size, const float mean[3],
                        const float std[3], float* out) {
    YuvRows rows(frame, roi, area_weights(roi.h, size).taps, scratch().rows);
    to_f32(roi.w, roi.h, size, rows, mean, std, out);
}

void preprocess_yuv_u8(const Yuv420View& frame, Roi roi, int size, std::uint8_t* out) {
    YuvRows rows(frame, roi, area_weights(roi.h, size).taps, scratch().rows);
    to_u8(roi.w, roi.h, size, rows, out);
}

void yuv_row_to_bgr(const Yuv420View& f, int row, int x0, int w, std::uint8_t* bgr) {
    // OpenCV's YUV420 -> RGB (ITU-R BT.601, video range), 20-bit fixed point, so the result
    // matches cv2.cvtColor(..., COLOR_YUV2BGR_NV12 / _I420) exactly.
    constexpr int kShift = 20, kHalf = 1 << (kShift - 1);
    constexpr int kCY = 1220542, kCUB = 2116026, kCUG = -409993, kCVG = -852492, kCVR = 1673527;
    const std::uint8_t* yrow = f.y + row * f.y_stride;
    const std::ptrdiff_t crow = (row / 2) * f.uv_stride;
    for (int i = 0; i < w; ++i) {
        const int x = x0 + i;
        const std::ptrdiff_t c = crow + static_cast<std::ptrdiff_t>(x / 2) * f.uv_step;
        const int u = f.u[c] - 128, v = f.v[c] - 128;
        const int y = std::max(0, yrow[x] - 16) * kCY;
        bgr[3 * i] = clamp_u8((y + kHalf + kCUB * u) >> kShift);
        bgr[3 * i + 1] = clamp_u8((y + kHalf + kCVG * v + kCUG * u) >> kShift);
        bgr[3 * i + 2] = clamp_u8((y + kHalf + kCVR * v) >> kShift);
    }
}

namespace {

struct RowCounts {
    int sum, dark, bright, skin;
};

// Pixels per grey_span: its int32 brightness sum cannot overflow (kGreySpan * 255 < 2^31).
constexpr int kGreySpan = 4096;

// At most kGreySpan pixels: grey into `g`, and their brightness sum and dark/bright/skin
// counts. int32 counters and plain loops, so each CPU clone (and NEON) vectorises it.
MPOX_SIMD RowCounts grey_span(const std::uint8_t* p, int w, std::uint8_t* g) {
    // OpenCV's fixed-point BGR -> grey and BGR -> YCrCb coefficients (14-bit).
    constexpr int kShift = 14, kHalf = 1 << (kShift - 1);
    constexpr int kR = 4899, kG = 9617, kB = 1868, kCr = 11682, kCb = 9241;
    int sum = 0, dark = 0, bright = 0, skin = 0;
    for (int x = 0; x < w; ++x) {
        const int b = p[3 * x], gr = p[3 * x + 1], r = p[3 * x + 2];
        const int lum = (b * kB + gr * kG + r * kR + kHalf) >> kShift;
        const int cr = ((r - lum) * kCr + (128 << kShift) + kHalf) >> kShift;
        const int cb = ((b - lum) * kCb + (128 << kShift) + kHalf) >> kShift;
        g[x] = static_cast<std::uint8_t>(lum);
        sum += lum;
        dark += lum <= kDarkLevel;
        bright += lum >= kBrightLevel;
        skin += (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127);
    }
    return {sum, dark, bright, skin};
}

// Sum and sum of squares of the 4-neighbour Laplacian over the inner pixels of one row, in
// chunks whose int32 sums cannot overflow (|lap| <= 1020, so 2048 squares < 2^31).
MPOX_SIMD void laplacian_row(const std::uint8_t* up, const std::uint8_t* mid, const std::uint8_t* down, int w,
                             long long& total, long long& total_sq) {
    constexpr int kChunk = 2048;
    for (int x0 = 1; x0 + 1 < w; x0 += kChunk) {
        const int x1 = std::min(w - 1, x0 + kChunk);
        int s = 0, sq = 0;
        for (int x = x0; x < x1; ++x) {
            const int lap = up[x] + down[x] + mid[x - 1] + mid[x + 1] - 4 * mid[x];
            s += lap;
            sq += lap * lap;
        }
        total += s;
        total_sq += static_cast<unsigned>(sq);
    }
}

}  // namespace

Quality frame_quality_bgr(const BgrView& roi) {
    const int w = roi.width, h = roi.height;
    std::vector<std::uint8_t> grey(static_cast<std::size_t>(w) * h);
    long long sum = 0, dark = 0, bright = 0, skin = 0;  // 64-bit: a row of millions of 255s overflows int32
    for (int y = 0; y < h; ++y) {
        const std::uint8_t* row = roi.data + y * roi.row_stride;
        std::uint8_t* g = grey.data() + static_cast<std::size_t>(y) * w;
        for (int x0 = 0; x0 < w; x0 += kGreySpan) {
            const int n = std::min(kGreySpan, w - x0);
            const RowCounts c = grey_span(row + 3 * static_cast<std::ptrdiff_t>(x0), n, g + x0);
            sum += c.sum;
            dark += c.dark;
            bright += c.bright;
            skin += c.skin;
        }
    }
    long long lap_sum = 0, lap_sq = 0, lap_n = 0;
    for (int y = 1; y + 1 < h; ++y) {
        const std::uint8_t* up = grey.data() + static_cast<std::size_t>(y - 1) * w;
        laplacian_row(up, up + w, up + 2 * w, w, lap_sum, lap_sq);
        lap_n += w - 2;
    }
    const double n = static_cast<double>(w) * h;
    Quality q{};
    if (lap_n > 0) {
        const double mean = static_cast<double>(lap_sum) / lap_n;
        q.sharpness = static_cast<double>(lap_sq) / lap_n - mean * mean;
    }
    q.brightness = sum / n;
    q.dark_fraction = dark / n;
    q.bright_fraction = bright / n;
    q.skin_fraction = skin / n;
    return q;
}

}  // namespace mpox
