// The toolchain's bridge to Arm's Ethos-N support library (ARM-software/ethos-n-driver-stack,
// Apache-2.0): builds an estimation network from a request written by
// toolchain/targets/ethos_n_arm.py, runs the library's EstimatePerformance and prints its
// per-pass figures as JSON. Built on first use, against the user's library and headers,
// with the user's g++ (C++14); it holds no Arm code.
//
//   bridge --version                 {"library_version": "6.0.0"}
//   bridge REQUEST BLOB              the estimate (exit 0); exit 3 with one line on stderr
//                                    when the library refuses the network; exit 2 on a bad request
//
// REQUEST is whitespace-separated text: a header ("ethosn-bridge 1", "variant NAME",
// "sram_bytes N", "current 0|1"), then one operation per line, each starting with its kind
// and the index of the model layer it comes from. Operand ids are the toolchain's; BLOB holds
// the raw int8 weights and int32 biases the operations point into by byte offset. When the
// library does not support an operation it says why; the operation is then added as
// "estimate only" with that reason (as Arm NN's backend does in its performance-only mode), so
// the estimate still covers the network and the layer is named in "not_supported".
#include <ethosn_support_library/Support.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sl = ethosn::support_library;

namespace
{

struct BadRequest : std::runtime_error
{
    using std::runtime_error::runtime_error;
};

struct Request
{
    std::istream& in;
    std::vector<char> blob;

    std::string Word()
    {
        std::string w;
        if (!(in >> w))
        {
            throw BadRequest("request ends early");
        }
        return w;
    }
    uint32_t U32()
    {
        return static_cast<uint32_t>(std::stoul(Word()));
    }
    int32_t I32()
    {
        return static_cast<int32_t>(std::stol(Word()));
    }
    float F32()
    {
        return std::stof(Word());
    }
    sl::QuantizationInfo Quant()
    {
        int32_t zp = I32();
        uint32_t n = U32();
        std::vector<float> scales(n);
        for (auto& s : scales)
        {
            s = F32();
        }
        int32_t dim = I32();
        sl::QuantizationInfo q(zp, sl::QuantizationScales(scales));
        if (dim >= 0)
        {
            q.SetQuantizationDim(static_cast<uint32_t>(dim));
        }
        return q;
    }
    sl::TensorInfo Tensor()
    {
        sl::TensorShape shape{};
        for (auto& d : shape)
        {
            d = U32();
        }
        std::string type = Word(), format = Word();
        sl::DataType dt = type == "i8"    ? sl::DataType::INT8_QUANTIZED
                          : type == "u8"  ? sl::DataType::UINT8_QUANTIZED
                          : type == "i32" ? sl::DataType::INT32_QUANTIZED
                                          : throw BadRequest("unknown data type " + type);
        sl::DataFormat df = format == "NHWC"   ? sl::DataFormat::NHWC
                            : format == "HWIO" ? sl::DataFormat::HWIO
                            : format == "HWIM" ? sl::DataFormat::HWIM
                                               : throw BadRequest("unknown data format " + format);
        return sl::TensorInfo(shape, dt, df, Quant());
    }
    sl::Padding Pad()
    {
        uint32_t t = U32(), b = U32(), l = U32(), r = U32();
        return sl::Padding(t, b, l, r);
    }
    const void* Data(size_t offset, size_t bytes)
    {
        if (offset > blob.size() || bytes > blob.size() - offset)
        {
            throw BadRequest("blob offset out of range");
        }
        return blob.data() + offset;
    }
    std::string Hex()
    {
        std::string hex = Word(), out;
        if (hex == "-")
        {
            return out;
        }
        for (size_t i = 0; i + 1 < hex.size(); i += 2)
        {
            out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
        }
        return out;
    }
};

std::string JsonString(const std::string& s)
{
    std::string out = "\"";
    for (unsigned char c : s)
    {
        if (c == '"' || c == '\\')
        {
            out += '\\';
            out += static_cast<char>(c);
        }
        else if (c < 0x20)
        {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        }
        else
        {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// The enum's own names (the library's EthosNVariantAsString spells them differently).
sl::EthosNVariant VariantNamed(const std::string& name)
{
    using V = sl::EthosNVariant;
    static const std::map<std::string, V> variants = {
        { "ETHOS_N78_1TOPS_2PLE_RATIO", V::ETHOS_N78_1TOPS_2PLE_RATIO },
        { "ETHOS_N78_1TOPS_4PLE_RATIO", V::ETHOS_N78_1TOPS_4PLE_RATIO },
        { "ETHOS_N78_2TOPS_2PLE_RATIO", V::ETHOS_N78_2TOPS_2PLE_RATIO },
        { "ETHOS_N78_2TOPS_4PLE_RATIO", V::ETHOS_N78_2TOPS_4PLE_RATIO },
        { "ETHOS_N78_4TOPS_2PLE_RATIO", V::ETHOS_N78_4TOPS_2PLE_RATIO },
        { "ETHOS_N78_4TOPS_4PLE_RATIO", V::ETHOS_N78_4TOPS_4PLE_RATIO },
        { "ETHOS_N78_8TOPS_2PLE_RATIO", V::ETHOS_N78_8TOPS_2PLE_RATIO },
    };
    auto it = variants.find(name);
    if (it == variants.end())
    {
        throw BadRequest("unknown variant " + name);
    }
    return it->second;
}

class Builder
{
public:
    Builder(Request& req, std::shared_ptr<sl::Network> network)
        : m_Req(req)
        , m_Network(std::move(network))
    {}

    // One operation of the request; false at the end of the request.
    bool Next()
    {
        std::string kind;
        if (!(m_Req.in >> kind))
        {
            return false;
        }
        int32_t layer = m_Req.I32();    // -1: the network's own input or output, no model layer
        if (kind == "input")
        {
            uint32_t out       = m_Req.U32();
            auto r          = sl::AddInput(m_Network, m_Req.Tensor());
            m_Operands[out] = r.tensor;
            Record(r.operationId, layer);
        }
        else if (kind == "output")
        {
            auto r = sl::AddOutput(m_Network, Operand(m_Req.U32()));
            Record(r.operationId, layer);
        }
        else if (kind == "estimate")
        {
            std::vector<sl::Operand*> ins = Inputs(m_Req.U32());
            uint32_t n                    = m_Req.U32();
            std::vector<uint32_t> outs(n);
            std::vector<sl::TensorInfo> infos;
            for (auto& o : outs)
            {
                o = m_Req.U32();
                infos.push_back(m_Req.Tensor());
            }
            EstimateOnly(layer, ins, outs, infos, m_Req.Hex(), false);
        }
        else
        {
            Operation(kind, layer);
        }
        return true;
    }

    std::map<uint32_t, int32_t> m_Layers;    // support library operation id -> model layer
    std::vector<std::pair<int32_t, std::string>> m_NotSupported;

private:
    void Record(uint32_t operationId, int32_t layer)
    {
        if (layer >= 0)
        {
            m_Layers[operationId] = layer;
        }
    }

    sl::Operand& Operand(uint32_t id)
    {
        auto it = m_Operands.find(id);
        if (it == m_Operands.end())
        {
            throw BadRequest("operand " + std::to_string(id) + " used before it is defined");
        }
        return *it->second;
    }

    std::vector<sl::Operand*> Inputs(uint32_t n)
    {
        std::vector<sl::Operand*> ins;
        for (uint32_t i = 0; i < n; ++i)
        {
            ins.push_back(&Operand(m_Req.U32()));
        }
        return ins;
    }

    void EstimateOnly(int32_t layer,
                      const std::vector<sl::Operand*>& ins,
                      const std::vector<uint32_t>& outs,
                      const std::vector<sl::TensorInfo>& infos,
                      const std::string& reason,
                      bool fromLibrary)
    {
        auto r = sl::AddEstimateOnly(m_Network, ins, sl::EstimateOnlyInfo(infos, reason));
        for (size_t i = 0; i < outs.size(); ++i)
        {
            m_Operands[outs[i]] = r.tensors.at(i);
        }
        Record(r.operationId, layer);
        if (fromLibrary)
        {
            m_NotSupported.emplace_back(layer, reason);
        }
    }

    std::shared_ptr<sl::Constant> Constant(const sl::TensorInfo& info, size_t offset, size_t bytes)
    {
        auto c = sl::AddConstant(m_Network, info, m_Req.Data(offset, bytes)).tensor;
        m_Constants.push_back(c);
        return c;
    }

    // Weights (read from the request), then the int32 bias whose scales the library requires to
    // equal input scale x weight scales: computed here rather than copied from the model.
    std::pair<std::shared_ptr<sl::Constant>, std::shared_ptr<sl::Constant>> WeightsAndBias(uint32_t inputId,
                                                                                             bool depthwise)
    {
        sl::TensorInfo w = m_Req.Tensor();
        size_t wOffset = m_Req.U32(), bOffset = m_Req.U32();
        const auto& d     = w.m_Dimensions;
        uint32_t channels = depthwise ? d[2] * d[3] : d[3];
        float inScale     = sl::GetTensorInfo(m_Operands.at(inputId)).m_QuantizationInfo.GetScale(0);
        sl::QuantizationInfo bq(0, sl::QuantizationScales(inScale * w.m_QuantizationInfo.GetScales()));
        if (w.m_QuantizationInfo.GetScales().size() > 1)
        {
            bq.SetQuantizationDim(3);
        }
        sl::TensorInfo b({ 1, 1, 1, channels }, sl::DataType::INT32_QUANTIZED, sl::DataFormat::NHWC, bq);
        auto weights = Constant(w, wOffset, static_cast<size_t>(d[0]) * d[1] * d[2] * d[3]);
        auto bias    = Constant(b, bOffset, static_cast<size_t>(channels) * 4);
        return { weights, bias };
    }

    void Operation(const std::string& kind, int32_t layer)
    {
        std::vector<sl::Operand*> ins;
        std::vector<uint32_t> outs;
        auto in = [&]() -> sl::Operand& {
            ins.push_back(&Operand(m_Req.U32()));
            return *ins.back();
        };
        auto out = [&]() { outs.push_back(m_Req.U32()); };
        // Each kind reads its operands and parameters, then returns the call that adds it.
        std::function<sl::TensorAndId<sl::Operand>()> add;
        if (kind == "conv" || kind == "dwconv")
        {
            uint32_t xId   = m_Req.U32();
            sl::Operand& x = Operand(xId);
            ins.push_back(&x);
            out();
            auto wb      = WeightsAndBias(xId, kind == "dwconv");
            auto weights = wb.first;
            auto bias    = wb.second;
            sl::Padding pad = m_Req.Pad();
            uint32_t sx = m_Req.U32(), sy = m_Req.U32();
            sl::ConvolutionInfo info(pad, sl::Stride(sx, sy), m_Req.Quant());
            add = [=, &x]() {
                return kind == "conv" ? sl::AddConvolution(m_Network, x, *bias, *weights, info)
                                      : sl::AddDepthwiseConvolution(m_Network, x, *bias, *weights, info);
            };
        }
        else if (kind == "fc")
        {
            uint32_t xId   = m_Req.U32();
            sl::Operand& x = Operand(xId);
            ins.push_back(&x);
            out();
            auto wb      = WeightsAndBias(xId, false);
            auto weights = wb.first;
            auto bias    = wb.second;
            sl::FullyConnectedInfo info(m_Req.Quant());
            add = [=, &x]() { return sl::AddFullyConnected(m_Network, x, *bias, *weights, info); };
        }
        else if (kind == "pool")
        {
            sl::Operand& x = in();
            out();
            uint32_t kx = m_Req.U32(), ky = m_Req.U32(), sx = m_Req.U32(), sy = m_Req.U32();
            sl::Padding pad       = m_Req.Pad();
            sl::PoolingType type  = m_Req.Word() == "max" ? sl::PoolingType::MAX : sl::PoolingType::AVG;
            sl::PoolingInfo info(kx, ky, sx, sy, pad, type);
            add = [=, &x]() { return sl::AddPooling(m_Network, x, info); };
        }
        else if (kind == "add" || kind == "mul")
        {
            sl::Operand& a = in();
            sl::Operand& b = in();
            out();
            sl::QuantizationInfo q = m_Req.Quant();
            add = [=, &a, &b]() {
                return kind == "add" ? sl::AddAddition(m_Network, a, b, q) : sl::AddMultiplication(m_Network, a, b, q);
            };
        }
        else if (kind == "relu")
        {
            sl::Operand& x = in();
            out();
            int16_t lo = static_cast<int16_t>(m_Req.I32()), hi = static_cast<int16_t>(m_Req.I32());
            add = [=, &x]() { return sl::AddRelu(m_Network, x, sl::ReluInfo(lo, hi)); };
        }
        else if (kind == "leaky")
        {
            sl::Operand& x = in();
            out();
            float alpha = m_Req.F32();
            sl::LeakyReluInfo info(alpha, m_Req.Quant());
            add = [=, &x]() { return sl::AddLeakyRelu(m_Network, x, info); };
        }
        else if (kind == "sigmoid" || kind == "tanh" || kind == "meanxy")
        {
            sl::Operand& x = in();
            out();
            add = [=, &x]() {
                return kind == "sigmoid" ? sl::AddSigmoid(m_Network, x)
                       : kind == "tanh"  ? sl::AddTanh(m_Network, x)
                                         : sl::AddMeanXy(m_Network, x);
            };
        }
        else if (kind == "reshape")
        {
            sl::Operand& x = in();
            out();
            sl::TensorShape shape{};
            for (auto& d : shape)
            {
                d = m_Req.U32();
            }
            add = [=, &x]() { return sl::AddReshape(m_Network, x, shape); };
        }
        else if (kind == "concat")
        {
            uint32_t n = m_Req.U32();
            for (uint32_t i = 0; i < n; ++i)
            {
                in();
            }
            out();
            uint32_t axis = m_Req.U32();
            sl::ConcatenationInfo info(axis, m_Req.Quant());
            std::vector<sl::Operand*> all = ins;
            add = [=]() { return sl::AddConcatenation(m_Network, all, info); };
        }
        else if (kind == "pad")
        {
            sl::Operand& x = in();
            out();
            sl::Padding pad = m_Req.Pad();
            add = [=, &x]() { return sl::AddStandalonePadding(m_Network, x, pad); };
        }
        else if (kind == "requant")
        {
            sl::Operand& x = in();
            out();
            sl::RequantizeInfo info(m_Req.Quant());
            add = [=, &x]() { return sl::AddRequantize(m_Network, x, info); };
        }
        else if (kind == "resize")
        {
            sl::Operand& x = in();
            out();
            sl::ResizeAlgorithm algo =
                m_Req.Word() == "bilinear" ? sl::ResizeAlgorithm::BILINEAR : sl::ResizeAlgorithm::NEAREST_NEIGHBOUR;
            uint32_t h = m_Req.U32(), w = m_Req.U32();
            sl::ResizeInfo info(algo, h, w, m_Req.Quant());
            add = [=, &x]() { return sl::AddResize(m_Network, x, info); };
        }
        else
        {
            throw BadRequest("unknown operation " + kind);
        }
        sl::TensorInfo expected = m_Req.Tensor();    // what the model says the output is, for the fallback
        try
        {
            auto r                 = add();
            m_Operands[outs.at(0)] = r.tensor;
            Record(r.operationId, layer);
        }
        catch (const sl::NotSupportedException& e)
        {
            EstimateOnly(layer, ins, outs, { expected }, e.what(), true);
        }
    }

    Request& m_Req;
    std::shared_ptr<sl::Network> m_Network;
    std::map<uint32_t, std::shared_ptr<sl::Operand>> m_Operands;
    std::vector<std::shared_ptr<sl::Constant>> m_Constants;
};

void PrintMemory(std::ostream& os, const char* name, const sl::InputStats& s)
{
    os << JsonString(name) << ": {\"dram_parallel_bytes\": " << s.m_MemoryStats.m_DramParallel
       << ", \"dram_non_parallel_bytes\": " << s.m_MemoryStats.m_DramNonParallel
       << ", \"sram_bytes\": " << s.m_MemoryStats.m_Sram
       << ", \"central_stripes\": " << s.m_StripesStats.m_NumCentralStripes
       << ", \"boundary_stripes\": " << s.m_StripesStats.m_NumBoundaryStripes
       << ", \"reloads\": " << s.m_StripesStats.m_NumReloads;
}

void PrintEstimate(std::ostream& os,
                   const std::string& variant,
                   uint32_t sramBytes,
                   bool current,
                   const Builder& b,
                   const sl::NetworkPerformanceData& perf)
{
    auto layerOf = [&](uint32_t id) { return b.m_Layers.count(id) ? b.m_Layers.at(id) : -1; };
    os << "{\"library_version\": " << JsonString(sl::GetLibraryVersion().ToString())
       << ", \"variant\": " << JsonString(variant) << ", \"sram_bytes\": " << sramBytes
       << ", \"current\": " << (current ? "true" : "false") << ", \"passes\": [";
    for (size_t i = 0; i < perf.m_Stream.size(); ++i)
    {
        const auto& pass = perf.m_Stream[i];
        const auto& s    = pass.m_Stats;
        os << (i ? ",\n  " : "\n  ") << "{\"layers\": [";
        std::set<int32_t> layers;    // the model layers of its operations (constants, inputs and outputs have none)
        for (uint32_t id : pass.m_OperationIds)
        {
            if (layerOf(id) >= 0)
            {
                layers.insert(layerOf(id));
            }
        }
        bool first = true;
        for (int32_t layer : layers)
        {
            os << (first ? "" : ", ") << layer;
            first = false;
        }
        os << "], ";
        PrintMemory(os, "input", s.m_Input);
        os << "}, ";
        PrintMemory(os, "output", s.m_Output);
        os << "}, ";
        PrintMemory(os, "weights", s.m_Weights);
        os << ", \"compression_savings\": " << s.m_Weights.m_WeightCompressionSavings << "}, ";
        os << "\"mce\": {\"operations\": " << s.m_Mce.m_Operations << ", \"cycles\": " << s.m_Mce.m_CycleCount
           << "}, \"ple\": {\"operation\": " << s.m_Ple.m_Operation << ", \"patches\": " << s.m_Ple.m_NumOfPatches
           << ", \"cycles\": " << s.m_Ple.m_CycleCount << "}}";
    }
    os << "],\n \"issues\": [";
    bool first = true;
    for (const auto& f : perf.m_OperationIdFailureReasons)
    {
        os << (first ? "" : ", ") << "{\"layer\": " << layerOf(f.first) << ", \"reason\": " << JsonString(f.second)
           << "}";
        first = false;
    }
    os << "],\n \"not_supported\": [";
    first = true;
    for (const auto& n : b.m_NotSupported)
    {
        os << (first ? "" : ", ") << "{\"layer\": " << n.first << ", \"reason\": " << JsonString(n.second) << "}";
        first = false;
    }
    os << "]}\n";
}

std::string OneLine(std::string s)
{
    for (auto& c : s)
    {
        c = (c == '\n' || c == '\r') ? ' ' : c;
    }
    return s;
}

}    // namespace

int main(int argc, char** argv)
{
    if (argc == 2 && std::string(argv[1]) == "--version")
    {
        std::cout << "{\"library_version\": " << JsonString(sl::GetLibraryVersion().ToString()) << "}\n";
        return 0;
    }
    if (argc != 3)
    {
        std::cerr << "usage: bridge --version | bridge REQUEST BLOB\n";
        return 2;
    }
    std::ifstream requestFile(argv[1]);
    std::ifstream blobFile(argv[2], std::ios::binary);
    if (!requestFile || !blobFile)
    {
        std::cerr << "cannot read the request or the blob\n";
        return 2;
    }
    Request req{ requestFile, std::vector<char>(std::istreambuf_iterator<char>(blobFile), {}) };
    try
    {
        if (req.Word() != "ethosn-bridge" || req.U32() != 1)
        {
            throw BadRequest("not a bridge request of version 1");
        }
        std::string variant, key;
        uint32_t sramBytes = 0;
        bool current       = false;
        while ((key = req.Word()) != "end")
        {
            if (key == "variant")
                variant = req.Word();
            else if (key == "sram_bytes")
                sramBytes = req.U32();
            else if (key == "current")
                current = req.U32() != 0;
            else
                throw BadRequest("unknown header key " + key);
        }
        std::shared_ptr<sl::Network> network;
        try
        {
            network = sl::CreateEstimationNetwork(sl::GetFwAndHwCapabilities(VariantNamed(variant), sramBytes));
        }
        catch (const std::exception& e)
        {
            std::cerr << OneLine(e.what()) << "\n";
            return 3;
        }
        Builder builder(req, network);
        try
        {
            while (builder.Next())
            {
            }
            sl::EstimationOptions estimation;
            estimation.m_Current = current;
            sl::NetworkPerformanceData perf = sl::EstimatePerformance(*network, sl::CompilationOptions(), estimation);
            PrintEstimate(std::cout, variant, sramBytes, current, builder, perf);
        }
        catch (const BadRequest&)
        {
            throw;
        }
        catch (const std::exception& e)
        {
            std::cerr << OneLine(e.what()) << "\n";
            return 3;
        }
    }
    catch (const std::exception& e)    // BadRequest, or a number that does not parse
    {
        std::cerr << "bad request: " << OneLine(e.what()) << "\n";
        return 2;
    }
    return 0;
}
