// C++ unit tests of the kernels, run by ctest (make test). No framework: each check prints
// what failed and the run exits non-zero.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "preprocess.hpp"

static int failures = 0;
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                               \
        }                                                             \
    } while (0)

static void weights_sum_to_one() {
    for (int in : {1, 3, 5, 224, 225, 719, 1280, 4000}) {
        for (int out : {1, 7, 224, 300}) {
            const mpox::AxisWeights ax = mpox::area_weights(in, out);
            for (int o = 0; o < out; ++o) {
                double total = 0;
                for (int k = 0; k < ax.taps; ++k) total += ax.weight[o * ax.taps + k];
                CHECK(std::fabs(total - 1.0) < 1e-5);
                CHECK(ax.start[o] >= 0 && ax.start[o] + ax.taps <= in);
            }
        }
    }
}

static void constant_frame_gives_constant_output() {
    const int w = 37, h = 23, size = 16;
    std::vector<std::uint8_t> frame(w * h * 3);
    for (int i = 0; i < w * h; ++i) {
        frame[3 * i] = 10;       // B
        frame[3 * i + 1] = 100;  // G
        frame[3 * i + 2] = 200;  // R
    }
    const mpox::BgrView view{frame.data(), w, h, w * 3};
    const float mean[3] = {0.f, 0.f, 0.f}, std[3] = {1.f, 1.f, 1.f};
    std::vector<float> out(3 * size * size);
    mpox::preprocess_bgr_f32(view, size, mean, std, out.data());
    for (int i = 0; i < size * size; ++i) {
        CHECK(std::fabs(out[i] - 200.f / 255.f) < 1e-5);                  // R plane first
        CHECK(std::fabs(out[size * size + i] - 100.f / 255.f) < 1e-5);
        CHECK(std::fabs(out[2 * size * size + i] - 10.f / 255.f) < 1e-5);
    }
    std::vector<std::uint8_t> rgb(size * size * 3);
    mpox::preprocess_bgr_u8(view, size, rgb.data());
    CHECK(rgb[0] == 200 && rgb[1] == 100 && rgb[2] == 10);
}

static void two_by_two_average() {
    // A 2x2 frame to 1x1 is the mean of its four pixels.
    const std::uint8_t frame[12] = {0, 0, 0, 40, 40, 40, 80, 80, 80, 120, 120, 120};
    const mpox::BgrView view{frame, 2, 2, 6};
    std::uint8_t rgb[3];
    mpox::preprocess_bgr_u8(view, 1, rgb);
    CHECK(rgb[0] == 60 && rgb[1] == 60 && rgb[2] == 60);
}

static void grey_yuv_is_grey() {
    // Y=126, U=V=128 is mid grey: OpenCV gives (126-16)*1.164 = 128.
    const int w = 4, h = 4;
    std::vector<std::uint8_t> nv12(w * h * 3 / 2, 128);
    for (int i = 0; i < w * h; ++i) nv12[i] = 126;
    const mpox::Yuv420View f{nv12.data(), w, nv12.data() + w * h, nv12.data() + w * h + 1, w, 2, w, h};
    std::uint8_t bgr[3 * w];
    mpox::yuv_row_to_bgr(f, 0, 0, w, bgr);
    for (int i = 0; i < 3 * w; ++i) CHECK(bgr[i] == 128);
}

static void quality_of_flat_and_striped_frames() {
    const int w = 8, h = 8;
    std::vector<std::uint8_t> flat(w * h * 3, 0);
    mpox::Quality q = mpox::frame_quality_bgr({flat.data(), w, h, w * 3});
    CHECK(q.sharpness == 0.0 && q.brightness == 0.0 && q.dark_fraction == 1.0 && q.bright_fraction == 0.0);
    std::vector<std::uint8_t> stripes(w * h * 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) stripes[(y * w + x) * 3 + c] = (x % 2) ? 255 : 0;
    q = mpox::frame_quality_bgr({stripes.data(), w, h, w * 3});
    CHECK(q.sharpness > 1000.0);
    CHECK(std::fabs(q.bright_fraction - 0.5) < 1e-9 && std::fabs(q.dark_fraction - 0.5) < 1e-9);
}

static void a_very_wide_bright_row_keeps_its_brightness() {
    // 9 million pixels of 255 in a row: their sum overflows a 32-bit counter (issue 23 saw -222).
    const int w = 9000000, h = 2;
    std::vector<std::uint8_t> frame(static_cast<std::size_t>(w) * h * 3, 255);
    const mpox::Quality q = mpox::frame_quality_bgr({frame.data(), w, h, static_cast<std::ptrdiff_t>(w) * 3});
    CHECK(q.brightness == 255.0);
    CHECK(q.bright_fraction == 1.0 && q.dark_fraction == 0.0 && q.sharpness == 0.0);
    std::vector<std::uint8_t> half(static_cast<std::size_t>(w) * 3, 0);  // and a sum that does not start at 0
    for (std::size_t i = half.size() / 2; i < half.size(); ++i) half[i] = 200;
    const mpox::Quality r = mpox::frame_quality_bgr({half.data(), w, 1, static_cast<std::ptrdiff_t>(w) * 3});
    CHECK(std::fabs(r.brightness - 100.0) < 1e-3);
}

int main() {
    weights_sum_to_one();
    constant_frame_gives_constant_output();
    two_by_two_average();
    grey_yuv_is_grey();
    quality_of_flat_and_striped_frames();
    a_very_wide_bright_row_keeps_its_brightness();
    std::printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
