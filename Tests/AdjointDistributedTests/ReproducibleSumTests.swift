import AdjointDistributed
import AdjointTensor
import Testing

@Suite struct ReproducibleSumTests {}
