// Proposal NMS for CPU as an MXNet extension operator (lib_api, MXNet >= 1.7).
//
// gm_proposal_nms(data (B, N, 5)) -> (B, keep, 5), rows [score, x1, y1, x2, y2]
//
// Equals contrib.box_nms(data, overlap_thresh, topk, valid_thresh, coord_start=1,
// score_index=0, id_index=-1, force_suppress=True) followed by taking the first `keep` rows:
// rows scoring above valid_thresh are stably sorted by descending score, the first `topk` are
// suppressed greedily (IoU > overlap_thresh with a kept row, corner boxes, contrib's area and
// intersection arithmetic), kept rows come first and the rest are -1. The difference is the
// work: contrib compares every pair of the top-k; here each candidate is compared with the
// boxes kept so far only, and the loop ends as soon as `keep` boxes are kept.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"

using namespace mxnet::ext;

namespace {

struct NmsParams {
  float overlap_thresh, valid_thresh;
  int64_t topk, keep;
};

NmsParams ParseNms(const std::unordered_map<std::string, std::string>& attrs) {
  return NmsParams{std::stof(attrs.at("overlap_thresh")), std::stof(attrs.at("valid_thresh")),
                   std::stoll(attrs.at("topk")), std::stoll(attrs.at("keep"))};
}

inline float Area(const float* box) {
  const float w = box[2] - box[0], h = box[3] - box[1];
  return (w < 0 || h < 0) ? 0.f : w * h;
}

inline float Intersect(const float* a, const float* b) {
  const float left = a[0] > b[0] ? a[0] : b[0];
  const float right = a[2] < b[2] ? a[2] : b[2];
  const float top = a[1] > b[1] ? a[1] : b[1];
  const float bottom = a[3] < b[3] ? a[3] : b[3];
  const float w = right - left, h = bottom - top;
  return (w < 0 || h < 0) ? 0.f : w * h;
}

void NmsImage(const float* rows, int64_t num_rows, const NmsParams& p, float* out) {
  std::vector<int64_t> order;
  order.reserve(num_rows);
  for (int64_t i = 0; i < num_rows; ++i) {
    if (rows[i * 5] > p.valid_thresh) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [rows](int64_t a, int64_t b) { return rows[a * 5] > rows[b * 5]; });
  if (p.topk >= 0 && static_cast<int64_t>(order.size()) > p.topk) order.resize(p.topk);
  std::vector<int64_t> kept;
  std::vector<float> kept_area;
  kept.reserve(p.keep);
  for (int64_t idx : order) {
    if (static_cast<int64_t>(kept.size()) >= p.keep) break;
    const float* box = rows + idx * 5 + 1;
    const float area = Area(box);
    bool suppressed = false;
    for (size_t k = 0; k < kept.size() && !suppressed; ++k) {
      const float inter = Intersect(rows + kept[k] * 5 + 1, box);
      suppressed = inter / (kept_area[k] + area - inter) > p.overlap_thresh;
    }
    if (!suppressed) {
      kept.push_back(idx);
      kept_area.push_back(area);
    }
  }
  std::fill(out, out + p.keep * 5, -1.f);
  for (size_t k = 0; k < kept.size(); ++k) std::copy(rows + kept[k] * 5, rows + kept[k] * 5 + 5, out + k * 5);
}

MXReturnValue NmsParseAttrs(const std::unordered_map<std::string, std::string>& attrs,
                            int* num_in, int* num_out) {
  *num_in = 1;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue NmsInferType(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<int>* in_types, std::vector<int>* out_types) {
  if ((*in_types)[0] != kFloat32) {
    MX_ERROR_MSG << "gm_proposal_nms: float32 input only";
    return MX_FAIL;
  }
  (*out_types)[0] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue NmsInferShape(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<std::vector<unsigned int>>* in_shapes,
                            std::vector<std::vector<unsigned int>>* out_shapes) {
  const auto& data = (*in_shapes)[0];
  if (data.size() != 3 || data[2] != 5) {
    MX_ERROR_MSG << "gm_proposal_nms: data must be (B, N, 5)";
    return MX_FAIL;
  }
  (*out_shapes)[0] = {data[0], static_cast<unsigned>(ParseNms(attrs).keep), 5};
  return MX_SUCCESS;
}

MXReturnValue NmsForward(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) {
  const NmsParams p = ParseNms(attrs);
  const MXTensor& data = (*inputs)[0];
  const int64_t batch = data.shape[0], num_rows = data.shape[1];
  const float* rows = static_cast<const float*>(data.data_ptr);
  float* out = (*outputs)[0].data<float>();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < batch; ++b) NmsImage(rows + b * num_rows * 5, num_rows, p, out + b * p.keep * 5);
  return MX_SUCCESS;
}

// Proposals are not differentiated: callers stop the gradient of the input (MXNet may pass
// no buffer for it), and this backward, which lets the op sit in a training graph, writes nothing.
MXReturnValue NmsBackward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(gm_proposal_nms)
    .setParseAttrs(NmsParseAttrs)
    .setInferType(NmsInferType)
    .setInferShape(NmsInferShape)
    .setForward(NmsForward, "cpu")
    .setBackward(NmsBackward, "cpu");
