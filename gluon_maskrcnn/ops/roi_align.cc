// Multi-level ROIAlign for CPU as an MXNet extension operator (lib_api, MXNet >= 1.7).
//
// gm_multi_roi_align(rois (K, 5), levels (K,), feat_0, ..., feat_{L-1}) -> (K, C, PH, PW)
//
// Each ROI [batch, x1, y1, x2, y2] is pooled from feature map `levels[k] - min_level` only;
// ROIs with a negative batch index give zeros. The arithmetic of one ROI on one map is
// MXNet's contrib ROIAlign (aligned=False, not position-sensitive) operation for operation,
// so the forward output is bit-identical to it. What differs is the schedule: the sampling
// grid of every ROI is computed once; both passes run on channels-last copies of the maps, so
// each bilinear sample reads or updates four contiguous channel rows in vector loops; and the
// backward scatter is split over channel ranges, so threads never write to the same element
// (contrib's CPU backward is one serial loop over every output element).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"

using namespace mxnet::ext;

namespace {

struct Params {
  int pooled_h = 7, pooled_w = 7, sample_ratio = 2, min_level = 0, num_levels = 1;
  std::vector<float> scales;
};

std::vector<float> ParseFloats(const std::string& text) {
  std::string cleaned = text;
  for (char& ch : cleaned) {
    if (ch == '(' || ch == ')' || ch == '[' || ch == ']' || ch == ',') ch = ' ';
  }
  std::istringstream stream(cleaned);
  std::vector<float> values;
  float v;
  while (stream >> v) values.push_back(v);
  return values;
}

Params ParseParams(const std::unordered_map<std::string, std::string>& attrs) {
  Params p;
  std::vector<float> size = ParseFloats(attrs.at("pooled_size"));
  p.pooled_h = static_cast<int>(size[0]);
  p.pooled_w = static_cast<int>(size.size() > 1 ? size[1] : size[0]);
  p.sample_ratio = std::stoi(attrs.at("sample_ratio"));
  p.min_level = std::stoi(attrs.at("min_level"));
  p.scales = ParseFloats(attrs.at("spatial_scales"));
  p.num_levels = static_cast<int>(p.scales.size());
  return p;
}

// One bilinear sample: four flat offsets into a (H, W) plane and their weights.
struct Sample {
  int64_t pos[4];
  float w[4];
};

// The sampling grid of one ROI on its map, in contrib ROIAlign's order (ph, pw, iy, ix).
// Out-of-map samples get zero weights (and position 0) as in contrib's forward.
int RoiSamples(const float* roi, float scale, int height, int width, const Params& p,
               std::vector<Sample>* samples) {
  const float roi_start_w = roi[1] * scale;
  const float roi_start_h = roi[2] * scale;
  const float roi_end_w = roi[3] * scale;
  const float roi_end_h = roi[4] * scale;
  const float roi_width = std::max(roi_end_w - roi_start_w, 1.0f);
  const float roi_height = std::max(roi_end_h - roi_start_h, 1.0f);
  const float bin_h = roi_height / static_cast<float>(p.pooled_h);
  const float bin_w = roi_width / static_cast<float>(p.pooled_w);
  const int grid_h = p.sample_ratio > 0 ? p.sample_ratio : static_cast<int>(std::ceil(roi_height / p.pooled_h));
  const int grid_w = p.sample_ratio > 0 ? p.sample_ratio : static_cast<int>(std::ceil(roi_width / p.pooled_w));
  samples->resize(static_cast<size_t>(p.pooled_h) * p.pooled_w * grid_h * grid_w);
  size_t n = 0;
  for (int ph = 0; ph < p.pooled_h; ++ph) {
    for (int pw = 0; pw < p.pooled_w; ++pw) {
      for (int iy = 0; iy < grid_h; ++iy) {
        const float yy = roi_start_h + ph * bin_h +
                         static_cast<float>(iy + .5f) * bin_h / static_cast<float>(grid_h);
        for (int ix = 0; ix < grid_w; ++ix) {
          const float xx = roi_start_w + pw * bin_w +
                           static_cast<float>(ix + .5f) * bin_w / static_cast<float>(grid_w);
          Sample& s = (*samples)[n++];
          float x = xx, y = yy;
          // contrib's out-of-map test, written so that NaN coordinates (a diverged model) are
          // out of the map too instead of indexing memory at INT_MIN
          if (!(y >= -1.0 && y <= height && x >= -1.0 && x <= width)) {
            for (int i = 0; i < 4; ++i) { s.pos[i] = 0; s.w[i] = 0; }
            continue;
          }
          if (y <= 0) y = 0;
          if (x <= 0) x = 0;
          int y_low = static_cast<int>(y), x_low = static_cast<int>(x), y_high, x_high;
          if (y_low >= height - 1) {
            y_high = y_low = height - 1;
            y = static_cast<float>(y_low);
          } else {
            y_high = y_low + 1;
          }
          if (x_low >= width - 1) {
            x_high = x_low = width - 1;
            x = static_cast<float>(x_low);
          } else {
            x_high = x_low + 1;
          }
          const float ly = y - y_low, lx = x - x_low;
          const float hy = 1. - ly, hx = 1. - lx;
          s.pos[0] = static_cast<int64_t>(y_low) * width + x_low;
          s.pos[1] = static_cast<int64_t>(y_low) * width + x_high;
          s.pos[2] = static_cast<int64_t>(y_high) * width + x_low;
          s.pos[3] = static_cast<int64_t>(y_high) * width + x_high;
          s.w[0] = hy * hx;
          s.w[1] = hy * lx;
          s.w[2] = ly * hx;
          s.w[3] = ly * lx;
        }
      }
    }
  }
  return grid_h * grid_w;
}

struct RoiPlan {
  int level = -1;  // -1: skipped (negative batch index)
  int batch = 0;
  int count = 1;   // samples per bin
  std::vector<Sample> samples;
};

std::vector<RoiPlan> PlanRois(const std::vector<MXTensor>& in, const Params& p) {
  const int64_t num_rois = in[0].shape[0];
  const float* rois = static_cast<const float*>(in[0].data_ptr);
  const float* levels = static_cast<const float*>(in[1].data_ptr);
  std::vector<RoiPlan> plans(num_rois);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t k = 0; k < num_rois; ++k) {
    const float* roi = rois + k * 5;
    const int batch = static_cast<int>(roi[0]);
    if (batch < 0) continue;
    int level = static_cast<int>(levels[k]) - p.min_level;
    level = std::min(std::max(level, 0), p.num_levels - 1);
    const MXTensor& feat = in[2 + level];
    RoiPlan& plan = plans[k];
    plan.level = level;
    plan.batch = batch;
    plan.count = RoiSamples(roi, p.scales[level], static_cast<int>(feat.shape[2]),
                            static_cast<int>(feat.shape[3]), p, &plan.samples);
  }
  return plans;
}

MXReturnValue ParseAttrs(const std::unordered_map<std::string, std::string>& attrs,
                         int* num_in, int* num_out) {
  *num_in = 2 + ParseParams(attrs).num_levels;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue InferType(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<int>* in_types, std::vector<int>* out_types) {
  for (int t : *in_types) {
    if (t != kFloat32) {
      MX_ERROR_MSG << "gm_multi_roi_align: float32 inputs only";
      return MX_FAIL;
    }
  }
  (*out_types)[0] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue InferShape(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<std::vector<unsigned int>>* in_shapes,
                         std::vector<std::vector<unsigned int>>* out_shapes) {
  const Params p = ParseParams(attrs);
  const auto& rois = (*in_shapes)[0];
  const auto& feat = (*in_shapes)[2];
  if (rois.size() != 2 || rois[1] != 5 || feat.size() != 4) {
    MX_ERROR_MSG << "gm_multi_roi_align: rois must be (K, 5) and features (B, C, H, W)";
    return MX_FAIL;
  }
  (*out_shapes)[0] = {rois[0], feat[1], static_cast<unsigned>(p.pooled_h),
                      static_cast<unsigned>(p.pooled_w)};
  return MX_SUCCESS;
}

// ---------------------------------------------------------------- channels-last kernels
// The pooling runs on channels-last copies of the maps, so that one bilinear sample is four
// contiguous channel rows: the loops over channels are vector loops, and the arithmetic of
// each element is the NCHW loop's, in the same order (bit-identical; -ffp-contract=off).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GM_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GM_VECTOR_CLONES
#endif

constexpr int kTile = 8;  // bins gathered or written together

// acc[c] += w0 * r0[c] + w1 * r1[c] + w2 * r2[c] + w3 * r3[c]
GM_VECTOR_CLONES void AccumulateSample(float* __restrict acc, const float* r0, const float* r1,
                                       const float* r2, const float* r3, const float* w, int64_t n) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t c = 0; c < n; ++c) acc[c] += w0 * r0[c] + w1 * r1[c] + w2 * r2[c] + w3 * r3[c];
}

// row[c] += grad[c] * w
GM_VECTOR_CLONES void ScatterRow(float* __restrict row, const float* __restrict grad, float w, int64_t n) {
  for (int64_t c = 0; c < n; ++c) row[c] += grad[c] * w;
}

// (B, R, S) -> (B, S, R): channels-first to channels-last with R = C, S = HW, and back with
// R = HW, S = C. Each thread writes whole output rows.
void BatchedTranspose(const float* src, int64_t batch, int64_t rows, int64_t cols, float* dst) {
#pragma omp parallel for schedule(static)
  for (int64_t bj = 0; bj < batch * cols; ++bj) {
    const int64_t b = bj / cols, j = bj % cols;
    const float* from = src + b * rows * cols + j;
    float* to = dst + bj * rows;
    for (int64_t i = 0; i < rows; ++i) to[i] = from[i * cols];
  }
}

// Channels-last copies of all levels in one buffer (MXNet's temporary space when it fits).
struct LevelBuffers {
  std::vector<float> owned;
  float* base = nullptr;
  std::vector<int64_t> offset, plane, batch;
  int64_t channels = 0, total = 0;  // total: floats over all levels

  LevelBuffers(const std::vector<MXTensor>& feats, const OpResource& res) {
    for (const MXTensor& f : feats) {
      offset.push_back(total);
      batch.push_back(f.shape[0]);
      plane.push_back(f.shape[2] * f.shape[3]);
      channels = f.shape[1];
      total += f.size();
    }
    const int64_t bytes = total * static_cast<int64_t>(sizeof(float));
    if (bytes > 0 && bytes < INT32_MAX) base = static_cast<float*>(res.alloc_cpu(static_cast<int>(bytes)));
    if (base == nullptr) {
      owned.resize(total);
      base = owned.data();
    }
  }
  float* level(int l) { return base + offset[l]; }
  // the channel row of map position `pos` of image `b`
  float* row(int l, int b, int64_t pos) { return base + offset[l] + (b * plane[l] + pos) * channels; }
};

std::vector<MXTensor> TensorRange(const std::vector<MXTensor>& tensors, int first, int count) {
  return std::vector<MXTensor>(tensors.begin() + first, tensors.begin() + first + count);
}

MXReturnValue Forward(const std::unordered_map<std::string, std::string>& attrs,
                      std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                      const OpResource& res) {
  const Params p = ParseParams(attrs);
  const std::vector<RoiPlan> plans = PlanRois(*inputs, p);
  const std::vector<MXTensor> feats = TensorRange(*inputs, 2, p.num_levels);
  LevelBuffers maps(feats, res);
  for (int l = 0; l < p.num_levels; ++l) {
    BatchedTranspose(static_cast<const float*>(feats[l].data_ptr), maps.batch[l], maps.channels,
                     maps.plane[l], maps.level(l));
  }
  MXTensor& out = (*outputs)[0];
  const int64_t num_rois = out.shape[0], channels = out.shape[1];
  const int64_t bins = static_cast<int64_t>(p.pooled_h) * p.pooled_w;
  float* top = out.data<float>();
#pragma omp parallel
  {
    std::vector<float> tile(kTile * channels);
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < num_rois; ++k) {
      const RoiPlan& plan = plans[k];
      float* dst = top + k * channels * bins;  // (C, bins)
      if (plan.level < 0) {
        std::fill(dst, dst + channels * bins, 0.f);
        continue;
      }
      const Sample* s = plan.samples.data();
      for (int64_t b0 = 0; b0 < bins; b0 += kTile) {
        const int64_t count = std::min<int64_t>(kTile, bins - b0);
        std::fill(tile.begin(), tile.end(), 0.f);
        for (int64_t t = 0; t < count; ++t) {
          float* acc = tile.data() + t * channels;
          for (int i = 0; i < plan.count; ++i, ++s) {
            AccumulateSample(acc, maps.row(plan.level, plan.batch, s->pos[0]),
                             maps.row(plan.level, plan.batch, s->pos[1]),
                             maps.row(plan.level, plan.batch, s->pos[2]),
                             maps.row(plan.level, plan.batch, s->pos[3]), s->w, channels);
          }
        }
        for (int64_t c = 0; c < channels; ++c) {
          for (int64_t t = 0; t < count; ++t) dst[c * bins + b0 + t] = tile[t * channels + c] / plan.count;
        }
      }
    }
  }
  return MX_SUCCESS;
}

// One thread's share of the backward pass: channels [c0, c1) of every ROI's gradient.
void ScatterChannels(const std::vector<RoiPlan>& plans, const float* grad_out, int64_t channels,
                     int64_t bins, int64_t c0, int64_t c1, LevelBuffers* maps) {
  const int64_t width = c1 - c0;
  std::vector<float> tile(kTile * width);
  for (size_t k = 0; k < plans.size(); ++k) {
    const RoiPlan& plan = plans[k];
    if (plan.level < 0) continue;
    const float* grad_roi = grad_out + static_cast<int64_t>(k) * channels * bins;  // (C, bins)
    const Sample* s = plan.samples.data();
    for (int64_t b0 = 0; b0 < bins; b0 += kTile) {
      const int64_t count = std::min<int64_t>(kTile, bins - b0);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t t = 0; t < count; ++t) tile[t * width + c - c0] = grad_roi[c * bins + b0 + t] / plan.count;
      }
      for (int64_t t = 0; t < count; ++t) {
        const float* grad = tile.data() + t * width;
        for (int i = 0; i < plan.count; ++i, ++s) {
          for (int corner = 0; corner < 4; ++corner) {
            ScatterRow(maps->row(plan.level, plan.batch, s->pos[corner]) + c0, grad, s->w[corner], width);
          }
        }
      }
    }
  }
}

// inputs: out_grad, rois, levels, feats..., output; outputs: d rois, d levels, d feats...
// Only the feature gradients are written.
MXReturnValue Backward(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                       const OpResource& res) {
  const Params p = ParseParams(attrs);
  const std::vector<RoiPlan> plans = PlanRois(TensorRange(*inputs, 1, 2 + p.num_levels), p);
  const MXTensor& grad_out = (*inputs)[0];
  const int64_t channels = grad_out.shape[1];
  const int64_t bins = static_cast<int64_t>(p.pooled_h) * p.pooled_w;
  // rois and levels get no gradient: callers stop it (MXNet may pass no buffer for them)
  const std::vector<MXTensor> grads = TensorRange(*outputs, 2, p.num_levels);
  LevelBuffers maps(grads, res);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < maps.total; ++i) maps.base[i] = 0.f;
  const float* top = static_cast<const float*>(grad_out.data_ptr);
#pragma omp parallel
  {
    // contiguous channel ranges, a multiple of 16 wide: no two threads write the same element
    const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t share = ((channels + threads - 1) / threads + 15) / 16 * 16;
    const int64_t c0 = std::min(channels, id * share), c1 = std::min(channels, c0 + share);
    if (c0 < c1) ScatterChannels(plans, top, channels, bins, c0, c1, &maps);
  }
  for (int l = 0; l < p.num_levels; ++l) {
    BatchedTranspose(maps.level(l), maps.batch[l], maps.plane[l], channels,
                     static_cast<float*>(grads[l].data_ptr));
  }
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(gm_multi_roi_align)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
    .setForward(Forward, "cpu")
    .setBackward(Backward, "cpu");

MXReturnValue initialize(int version) {
  if (version < 10700) {
    MX_ERROR_MSG << "gluon_maskrcnn ops need MXNet >= 1.7, found " << version;
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
