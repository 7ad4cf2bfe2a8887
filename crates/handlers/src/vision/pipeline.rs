//! Image → tensor row: resize, centre crop, normalise, lay out, the steps of torchvision's
//! `Resize(256) → CenterCrop(224) → ToTensor() → Normalize(mean, std)` that TorchServe's image
//! handlers run, with every step configurable in model-config.yaml.

use image::RgbImage;
use image::imageops::FilterType;
use oxserve_backend::{DType, Dim, Signature, TensorSpec};

use super::Options;
use super::decode::{Limits, decode};
use oxserve_core::Result;

/// How the decoded image is resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Keep the image's size.
    Off,
    /// The shorter side becomes this many pixels, the aspect ratio kept (torchvision `Resize(n)`).
    ShortSide(u32),
    /// Exactly this height and width, the aspect ratio not kept (torchvision `Resize((h, w))`).
    Exact {
        /// Height.
        height: u32,
        /// Width.
        width: u32,
    },
}

/// Memory order of the tensor row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Channels first: `[N, 3, H, W]` (PyTorch).
    Nchw,
    /// Channels last: `[N, H, W, 3]` (TensorFlow, TFLite exports).
    Nhwc,
}

/// The per-handler defaults a [`Pipeline`] starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub resize: Resize,
    pub crop: Option<(u32, u32)>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// ImageNet channel means on a 0..1 scale (torchvision's).
pub(crate) const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations on a 0..1 scale.
pub(crate) const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A configured preprocessing pipeline for one model.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Decode limits.
    pub limits: Limits,
    /// Resize step.
    pub resize: Resize,
    /// Resampling filter of the resize.
    pub filter: FilterType,
    /// Centre crop `(height, width)`, padded with zeros when the image is smaller (as torchvision).
    pub crop: Option<(u32, u32)>,
    /// Per channel (in output channel order): `value = (pixel * scale - mean) / std`.
    pub mean: [f32; 3],
    /// See `mean`.
    pub std: [f32; 3],
    /// Multiplier applied to 0..255 pixels first (1/255 for torchvision's `ToTensor`).
    pub scale: f32,
    /// Tensor layout.
    pub layout: Layout,
    /// Channel order: BGR for models trained with OpenCV.
    pub bgr: bool,
}

/// One preprocessed image: its row of floats and where its pixels came from.
#[derive(Debug, Clone)]
pub struct Row {
    /// `3 * height * width` floats in the pipeline's layout.
    pub data: Vec<f32>,
    /// Height and width of the row.
    pub size: (u32, u32),
    /// Geometry to map row coordinates back to the original image.
    pub geometry: Geometry,
}

/// How a row's pixel coordinates relate to the original image's:
/// `original_x = (row_x + offset_x) * scale_x` (likewise for y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Original width and height.
    pub original: (u32, u32),
    /// Crop offset in resized pixels.
    pub offset_x: f32,
    /// See `offset_x`.
    pub offset_y: f32,
    /// Original pixels per resized pixel, horizontally.
    pub scale_x: f32,
    /// Original pixels per resized pixel, vertically.
    pub scale_y: f32,
}

impl Geometry {
    /// Maps a point of the row back into the original image, clamped to its bounds.
    pub fn to_original(&self, x: f32, y: f32) -> (f32, f32) {
        #[allow(clippy::cast_precision_loss)]
        let (w, h) = (self.original.0 as f32, self.original.1 as f32);
        (
            ((x + self.offset_x) * self.scale_x).clamp(0.0, w),
            ((y + self.offset_y) * self.scale_y).clamp(0.0, h),
        )
    }
}

impl Pipeline {
    /// Reads the pipeline options and checks them against the model's image input.
    ///
    /// Returns the pipeline and the fixed row size, when there is one.
    ///
    /// # Errors
    /// A bad option, or a model input the output size does not fit (a clear load-time error rather
    /// than a failure on every request).
    pub(crate) fn configure(
        options: &Options<'_>,
        signature: &Signature,
        defaults: Defaults,
    ) -> std::result::Result<Self, String> {
        let spec = image_input(signature)?;
        let layout = match options.string("layout")?.as_deref() {
            None => {
                if spec.shape.get(3) == Some(&Dim::Fixed(3))
                    && spec.shape.get(1) != Some(&Dim::Fixed(3))
                {
                    Layout::Nhwc
                } else {
                    Layout::Nchw
                }
            }
            Some("nchw") => Layout::Nchw,
            Some("nhwc") => Layout::Nhwc,
            Some(other) => {
                return Err(format!("handler.layout must be NCHW or NHWC, got `{other}`"));
            }
        };
        let (channels, model_h, model_w) = match layout {
            Layout::Nchw => (spec.shape[1], spec.shape[2], spec.shape[3]),
            Layout::Nhwc => (spec.shape[3], spec.shape[1], spec.shape[2]),
        };
        if !channels.accepts(3) {
            return Err(format!(
                "input `{}` has shape {}: with layout {layout:?} that is not 3 colour channels; \
                 set handler.layout",
                spec.name,
                spec.shape_string()
            ));
        }
        let model_size = match (model_h, model_w) {
            (Dim::Fixed(h), Dim::Fixed(w)) => Some((to_u32(h)?, to_u32(w)?)),
            _ => None,
        };
        let resize = match options.get("resize") {
            None => match (defaults.resize, model_size) {
                (Resize::Off, Some((height, width))) if defaults.crop.is_none() => {
                    Resize::Exact { height, width }
                }
                (resize, _) => resize,
            },
            Some(serde_json::Value::Bool(false)) => Resize::Off,
            Some(v) => match size(v, "resize")? {
                Size::One(0) => Resize::Off,
                Size::One(n) => Resize::ShortSide(n),
                Size::Two(height, width) => Resize::Exact { height, width },
            },
        };
        let crop = match options.get("crop") {
            None => defaults.crop,
            Some(serde_json::Value::Bool(false)) => None,
            Some(v) => match size(v, "crop")? {
                Size::One(0) => None,
                Size::One(n) => Some((n, n)),
                Size::Two(h, w) => Some((h, w)),
            },
        };
        let filter = match options.string("resize_filter")?.as_deref() {
            None | Some("bilinear" | "triangle" | "linear") => FilterType::Triangle,
            Some("bicubic" | "catmull-rom" | "catmullrom" | "cubic") => FilterType::CatmullRom,
            Some("nearest") => FilterType::Nearest,
            Some("lanczos" | "lanczos3") => FilterType::Lanczos3,
            Some("gaussian") => FilterType::Gaussian,
            Some(other) => {
                return Err(format!(
                    "handler.resize_filter must be nearest, bilinear, bicubic, lanczos or gaussian, \
                     got `{other}`"
                ));
            }
        };
        let bgr = match options.string("channel_order")?.as_deref() {
            None | Some("rgb") => false,
            Some("bgr") => true,
            Some(other) => {
                return Err(format!("handler.channel_order must be RGB or BGR, got `{other}`"));
            }
        };
        #[allow(clippy::cast_possible_truncation)]
        let scale = options.f64("scale", 1.0 / 255.0)? as f32;
        let mean = channels3(options, "mean", defaults.mean)?;
        let std = channels3(options, "std", defaults.std)?;
        if std.contains(&0.0) {
            return Err("handler.std must not contain 0".into());
        }
        let limits = Limits {
            max_width: u32::try_from(
                options.u64("max_image_width", u64::from(Limits::default().max_width))?,
            )
            .map_err(|_| "handler.max_image_width is too large".to_owned())?,
            max_height: u32::try_from(
                options.u64("max_image_height", u64::from(Limits::default().max_height))?,
            )
            .map_err(|_| "handler.max_image_height is too large".to_owned())?,
            max_pixels: options.u64("max_image_pixels", Limits::default().max_pixels)?,
            max_alloc: options.u64("max_decode_bytes", Limits::default().max_alloc)?,
        };
        let pipeline = Self { limits, resize, filter, crop, mean, std, scale, layout, bgr };
        if let Some((h, w)) = model_size {
            match pipeline.output_size() {
                Some(size) if size == (h, w) => {}
                Some((oh, ow)) => {
                    return Err(format!(
                        "the preprocessed image would be {oh}x{ow} but input `{}` takes {h}x{w} \
                         (shape {}); set handler.crop (or handler.resize to [{h}, {w}])",
                        spec.name,
                        spec.shape_string()
                    ));
                }
                None => {
                    return Err(format!(
                        "input `{}` takes {h}x{w} images (shape {}) but the pipeline keeps each \
                         image's size; set handler.crop or handler.resize to [{h}, {w}]",
                        spec.name,
                        spec.shape_string()
                    ));
                }
            }
        }
        Ok(pipeline)
    }

    /// The row size every image gets, when the pipeline fixes one.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        match (self.crop, self.resize) {
            (Some(crop), _) => Some(crop),
            (None, Resize::Exact { height, width }) => Some((height, width)),
            _ => None,
        }
    }

    /// Decodes and preprocesses one image file.
    ///
    /// # Errors
    /// [`oxserve_core::EngineError::InvalidInput`] for an image that cannot be decoded or is over the limits.
    pub fn run(&self, bytes: &[u8]) -> Result<Row> {
        let decoded = decode(bytes, &self.limits)?;
        Ok(self.process(&decoded.rgb))
    }

    /// Preprocesses a decoded image.
    pub fn process(&self, rgb: &RgbImage) -> Row {
        let (width, height) = rgb.dimensions();
        let (new_w, new_h) = match self.resize {
            Resize::Off => (width, height),
            Resize::Exact { height, width } => (width, height),
            Resize::ShortSide(n) => short_side(width, height, n),
        };
        let resized;
        let image = if (new_w, new_h) == (width, height) {
            rgb
        } else {
            resized = image::imageops::resize(rgb, new_w, new_h, self.filter);
            &resized
        };
        let (out_h, out_w) = self.crop.unwrap_or((new_h, new_w));
        // torchvision's CenterCrop: top = round((H - h) / 2), ties to even; negative = padding.
        let top = ((f64::from(new_h) - f64::from(out_h)) / 2.0).round_ties_even();
        let left = ((f64::from(new_w) - f64::from(out_w)) / 2.0).round_ties_even();
        #[allow(clippy::cast_possible_truncation)]
        let (top, left) = (top as i64, left as i64);
        let data = self.fill(image, (out_h, out_w), (top, left));
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let geometry = Geometry {
            original: (width, height),
            offset_x: left as f32,
            offset_y: top as f32,
            scale_x: width as f32 / new_w as f32,
            scale_y: height as f32 / new_h as f32,
        };
        Row { data, size: (out_h, out_w), geometry }
    }

    /// Normalises the `size` window at `(top, left)` of `image` into a row; outside the image the
    /// window reads zero pixels.
    fn fill(&self, image: &RgbImage, size: (u32, u32), origin: (i64, i64)) -> Vec<f32> {
        let (out_h, out_w) = (size.0 as usize, size.1 as usize);
        let plane = out_h * out_w;
        // One lookup table per output channel: 768 multiply-adds instead of one per pixel.
        let order: [usize; 3] = if self.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (p, v) in table.iter_mut().enumerate() {
                #[allow(clippy::cast_precision_loss)]
                let pixel = p as f32;
                *v = (pixel * self.scale - self.mean[c]) / self.std[c];
            }
        }
        let zero = [lut[0][0], lut[1][0], lut[2][0]];
        let mut data = vec![0f32; 3 * plane];
        let (img_w, img_h) = (i64::from(image.width()), i64::from(image.height()));
        let raw = image.as_raw();
        for y in 0..out_h {
            let sy = origin.0 + y as i64;
            for x in 0..out_w {
                let sx = origin.1 + x as i64;
                let values = if (0..img_h).contains(&sy) && (0..img_w).contains(&sx) {
                    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
                    let at = ((sy * img_w + sx) * 3) as usize;
                    let px = &raw[at..at + 3];
                    [
                        lut[0][px[order[0]] as usize],
                        lut[1][px[order[1]] as usize],
                        lut[2][px[order[2]] as usize],
                    ]
                } else {
                    zero
                };
                match self.layout {
                    Layout::Nchw => {
                        for (c, v) in values.into_iter().enumerate() {
                            data[c * plane + y * out_w + x] = v;
                        }
                    }
                    Layout::Nhwc => {
                        let at = (y * out_w + x) * 3;
                        data[at..at + 3].copy_from_slice(&values);
                    }
                }
            }
        }
        data
    }

    /// The tensor shape of `rows` images of `size`.
    pub fn shape(&self, rows: usize, size: (u32, u32)) -> Vec<usize> {
        let (h, w) = (size.0 as usize, size.1 as usize);
        match self.layout {
            Layout::Nchw => vec![rows, 3, h, w],
            Layout::Nhwc => vec![rows, h, w, 3],
        }
    }
}

/// torchvision `Resize(n)`: the shorter side becomes `n`, the longer `int(n * long / short)`.
fn short_side(width: u32, height: u32, n: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| {
        u32::try_from(u64::from(n) * u64::from(long) / u64::from(short)).unwrap_or(u32::MAX).max(1)
    };
    if width <= height { (n, scaled(height, width)) } else { (scaled(width, height), n) }
}

/// The model's one image input, which must be a rank-4 float tensor.
fn image_input(signature: &Signature) -> std::result::Result<&TensorSpec, String> {
    let [spec] = signature.inputs.as_slice() else {
        return Err(format!(
            "image handlers feed one image input, but the model has {} inputs",
            signature.inputs.len()
        ));
    };
    if spec.shape.len() != 4 {
        return Err(format!(
            "input `{}` has shape {}; image handlers need a rank-4 [N, 3, H, W] or [N, H, W, 3] input",
            spec.name,
            spec.shape_string()
        ));
    }
    if spec.dtype != DType::F32 {
        return Err(format!(
            "input `{}` is {}; image handlers feed float32",
            spec.name, spec.dtype
        ));
    }
    Ok(spec)
}

enum Size {
    One(u32),
    Two(u32, u32),
}

fn size(value: &serde_json::Value, key: &str) -> std::result::Result<Size, String> {
    let bad = || format!("handler.{key} must be a size in pixels or [height, width], got {value}");
    let dim = |v: &serde_json::Value| {
        v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|&n| n <= 65_536)
    };
    match value {
        serde_json::Value::Array(list) => match list.as_slice() {
            [h, w] => match (dim(h), dim(w)) {
                (Some(h), Some(w)) if h > 0 && w > 0 => Ok(Size::Two(h, w)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        other => dim(other).map(Size::One).ok_or_else(bad),
    }
}

fn channels3(
    options: &Options<'_>,
    key: &'static str,
    default: [f32; 3],
) -> std::result::Result<[f32; 3], String> {
    let Some(value) = options.get(key) else { return Ok(default) };
    let bad = || format!("handler.{key} must be a number or a list of 3 numbers, got {value}");
    #[allow(clippy::cast_possible_truncation)]
    let num = |v: &serde_json::Value| v.as_f64().map(|x| x as f32);
    match value {
        serde_json::Value::Array(list) => match list.as_slice() {
            [a, b, c] => {
                Ok([num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?, num(c).ok_or_else(bad)?])
            }
            _ => Err(bad()),
        },
        other => num(other).map(|x| [x; 3]).ok_or_else(bad),
    }
}

fn to_u32(n: usize) -> std::result::Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("image dimension {n} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(resize: Resize, crop: Option<(u32, u32)>) -> Pipeline {
        Pipeline {
            limits: Limits::default(),
            resize,
            filter: FilterType::Nearest,
            crop,
            mean: [0.0; 3],
            std: [1.0; 3],
            scale: 1.0,
            layout: Layout::Nchw,
            bgr: false,
        }
    }

    #[test]
    fn short_side_matches_torchvision() {
        assert_eq!(short_side(640, 480, 256), (341, 256));
        assert_eq!(short_side(480, 640, 256), (256, 341));
        assert_eq!(short_side(300, 300, 256), (256, 256));
    }

    #[test]
    fn crop_pads_and_centres_like_torchvision() {
        let image = RgbImage::from_fn(4, 2, |x, y| image::Rgb([(10 * y + x) as u8, 0, 0]));
        let row = pipeline(Resize::Off, Some((2, 2))).process(&image);
        // left = round((4 - 2) / 2) = 1: columns 1 and 2.
        assert_eq!(&row.data[..4], &[1.0, 2.0, 11.0, 12.0]);
        let row = pipeline(Resize::Off, Some((4, 4))).process(&image);
        // top = round(-1) = -1: the first and last rows are padding.
        assert_eq!(
            &row.data[..16],
            &[0., 0., 0., 0., 0., 1., 2., 3., 10., 11., 12., 13., 0., 0., 0., 0.]
        );
    }

    #[test]
    fn normalises_and_lays_out_channels() {
        let image = RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 127]));
        let mut p = pipeline(Resize::Off, None);
        p.mean = [127.0; 3];
        p.std = [128.0; 3];
        let row = p.process(&image);
        assert_eq!(row.data, vec![1.0, 1.0, -127.0 / 128.0, -127.0 / 128.0, 0.0, 0.0]);
        p.layout = Layout::Nhwc;
        p.bgr = true;
        let row = p.process(&image);
        assert_eq!(row.data, vec![0.0, -127.0 / 128.0, 1.0, 0.0, -127.0 / 128.0, 1.0]);
    }

    #[test]
    fn geometry_maps_back_to_the_original() {
        let image = RgbImage::new(200, 100);
        let row = pipeline(Resize::Exact { height: 50, width: 50 }, None).process(&image);
        assert_eq!(row.geometry.to_original(25.0, 25.0), (100.0, 50.0));
        let row = pipeline(Resize::ShortSide(50), Some((50, 50))).process(&image);
        // Resized to 100x50, cropped from x = 25.
        assert_eq!(row.geometry.to_original(0.0, 0.0), (50.0, 0.0));
    }
}
