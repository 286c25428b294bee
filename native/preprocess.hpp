// Camera frame -> model input in one pass over the pixels.
//
// Plain C++ kernels on pointers, sizes and strides: no Python here, so they can be unit-tested
// and fuzzed from C++. The pybind11 layer (bindings.cpp) validates every argument before it
// calls these; the kernels assume valid input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mpox {

// A 3-channel BGR uint8 image whose pixels are packed (3 bytes per pixel) inside each row;
// rows may be any distance apart (a slice of a bigger frame), even a negative one.
struct BgrView {
    const std::uint8_t* data;  // first pixel of the first row
    int width;
    int height;
    std::ptrdiff_t row_stride;  // bytes from one row to the next
};

// A YUV 4:2:0 frame: full-resolution luma, chroma subsampled 2x2. NV12 interleaves U and V
// in one plane (uv_step 2, v = u + 1); I420 keeps separate U and V planes (uv_step 1).
struct Yuv420View {
    const std::uint8_t* y;
    std::ptrdiff_t y_stride;
    const std::uint8_t* u;
    const std::uint8_t* v;
    std::ptrdiff_t uv_stride;  // bytes between chroma rows
    int uv_step;               // bytes between chroma samples in a row
    int width;                 // luma size of the whole frame
    int height;
};

struct Roi {
    int x, y, w, h;
};

// Area-average weights of one axis: output o takes `count` input samples from `start`
// (count is the same for every output; unused tail weights are zero), weights summing to 1.
struct AxisWeights {
    int taps = 0;
    std::vector<int> start;
    std::vector<float> weight;  // size() == outputs * taps
};
AxisWeights area_weights(int in_size, int out_size);

// float32 [3, size, size] RGB planes, (x/255 - mean) / std; mean and std are RGB.
void preprocess_bgr_f32(const BgrView& roi, int size, const float mean[3], const float std[3],
                        float* out);
// uint8 [size, size, 3] RGB, same geometry, no normalisation.
void preprocess_bgr_u8(const BgrView& roi, int size, std::uint8_t* out);

void preprocess_yuv_f32(const Yuv420View& frame, Roi roi, int size, const float mean[3],
                        const float std[3], float* out);
void preprocess_yuv_u8(const Yuv420View& frame, Roi roi, int size, std::uint8_t* out);

// One YUV 4:2:0 row to packed BGR, with OpenCV's BT.601 fixed-point formula.
void yuv_row_to_bgr(const Yuv420View& frame, int row, int x0, int w, std::uint8_t* bgr);

struct Quality {
    double sharpness;        // variance of the 4-neighbour Laplacian of grey (interior pixels)
    double brightness;       // mean grey level, 0..255
    double dark_fraction;    // grey <= kDarkLevel
    double bright_fraction;  // grey >= kBrightLevel
    double skin_fraction;    // YCrCb rule: 133 <= Cr <= 173 and 77 <= Cb <= 127
};
constexpr int kDarkLevel = 10;
constexpr int kBrightLevel = 245;
Quality frame_quality_bgr(const BgrView& roi);

}  // namespace mpox
