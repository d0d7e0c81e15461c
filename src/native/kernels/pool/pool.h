// Max and average pooling over the trailing 1 or 2 dims of a float32 tensor (ir/ops/pool.py):
// bit for bit the references (max: NaN propagates, padding never wins, earlier taps win ties;
// average: float32 sums in tap order, padded taps adding +0, divided by torch's count in float32).
#pragma once

#include <cstdint>

namespace pocketml {
namespace pool {

struct Shape {
  int64_t planes;         // the leading dims' product
  int64_t H, W, OH, OW;   // a 1-D pooling: H = OH = 1
  int64_t KH, KW, sh, sw, dh, dw, ph, pw;
  int64_t pe_h, pe_w;     // padding after (counted by count_include_pad)
};

// The output length of one dim (torch's formula with ceil_mode's last-window rule); -1 where the
// window does not fit.
int64_t out_len(int64_t L, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d, bool ceil_mode);

void max_pool(const Shape& s, const float* x, float* out, int threads);
// divisor > 0: divisor_override; else torch's count (with the padding where count_include_pad)
void avg_pool(const Shape& s, const float* x, float* out, bool count_include_pad, int64_t divisor, int threads);

}  // namespace pool
}  // namespace pocketml
