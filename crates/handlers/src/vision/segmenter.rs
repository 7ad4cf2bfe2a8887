//! `image_segmenter`: TorchServe's per-pixel answer, an `[H][W][2]` list of `[class, probability]`
//! from the softmax and argmax over the classes of the model's `out` output `[N, C, H, W]`.
//!
//! That JSON is large (a 520×520 mask is about 5 MB), so `output: png` answers instead with a PNG
//! whose pixel values are the class indices (8-bit grey, 16-bit past 256 classes): a few KB.

use std::any::Any;
use std::io::Cursor;

use base64::Engine as _;
use image::{ImageBuffer, ImageFormat, Luma};
use oxserve_backend::{Signature, Tensor};

use super::pipeline::{Defaults, IMAGENET_MEAN, IMAGENET_STD, Pipeline, Resize};
use super::{ListContext, Options, answer, floats, prepare, softmax};
use oxserve_core::handler::{Handler, HandlerContext, Payload, Prediction, Prepared};
use oxserve_core::{EngineError, Result};

/// See the module docs. Options (model-config.yaml `handler:`): the pipeline's (defaults: resize
/// to the model's fixed input size, no crop, ImageNet mean/std), `output` (`json` or `png`),
/// `softmax` (true; false when the model outputs probabilities).
#[derive(Debug)]
pub struct ImageSegmenter {
    pipeline: Pipeline,
    output: usize,
    png: bool,
    softmax: bool,
}

impl ImageSegmenter {
    /// Builds the handler for a model.
    ///
    /// # Errors
    /// A bad option or a model without an image input.
    pub fn new(ctx: &HandlerContext<'_>) -> std::result::Result<Self, String> {
        let options = Options::new(ctx)?;
        let defaults =
            Defaults { resize: Resize::Off, crop: None, mean: IMAGENET_MEAN, std: IMAGENET_STD };
        let pipeline = Pipeline::configure(&options, ctx.signature, defaults)?;
        let png = match options.string("output")?.as_deref() {
            None | Some("json") => false,
            Some("png") => true,
            Some(other) => {
                return Err(format!("handler.output must be json or png, got `{other}`"));
            }
        };
        let softmax = options.bool("softmax", true)?;
        options.finish("image_segmenter")?;
        Ok(Self { pipeline, output: find_output(ctx.signature)?, png, softmax })
    }
}

fn find_output(signature: &Signature) -> std::result::Result<usize, String> {
    if signature.outputs.is_empty() {
        return Err("the model has no outputs".into());
    }
    Ok(signature.outputs.iter().position(|o| o.name == "out").unwrap_or(0))
}

/// Argmax (and its probability) over the classes of one `[C, H, W]` row.
fn classify(
    row: &[f32],
    classes: usize,
    plane: usize,
    softmax_first: bool,
) -> (Vec<u32>, Vec<f32>) {
    let mut class = vec![0u32; plane];
    let mut prob = vec![0f32; plane];
    let mut scores = vec![0f32; classes];
    for p in 0..plane {
        for (c, s) in scores.iter_mut().enumerate() {
            *s = row[c * plane + p];
        }
        if softmax_first {
            softmax(&mut scores);
        }
        let (best, value) = scores
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .unwrap_or((0, 0.0));
        class[p] = u32::try_from(best).unwrap_or(u32::MAX);
        prob[p] = value;
    }
    (class, prob)
}

fn png(class: &[u32], width: u32, height: u32, classes: usize) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let failed =
        |e: image::ImageError| EngineError::Internal(format!("cannot encode the mask: {e}"));
    if classes <= 256 {
        let pixels = class.iter().map(|&c| u8::try_from(c).unwrap_or(u8::MAX)).collect();
        let mask: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_raw(width, height, pixels)
            .ok_or_else(|| EngineError::Internal("mask size mismatch".into()))?;
        mask.write_to(&mut out, ImageFormat::Png).map_err(failed)?;
    } else {
        let pixels = class.iter().map(|&c| u16::try_from(c).unwrap_or(u16::MAX)).collect();
        let mask: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(width, height, pixels)
                .ok_or_else(|| EngineError::Internal("mask size mismatch".into()))?;
        mask.write_to(&mut out, ImageFormat::Png).map_err(failed)?;
    }
    Ok(out.into_inner())
}

impl Handler for ImageSegmenter {
    fn preprocess(&self, payload: &Payload) -> Result<Prepared> {
        Ok(prepare(&self.pipeline, payload)?.into_prepared())
    }

    fn postprocess(
        &self,
        outputs: Vec<Tensor>,
        context: Box<dyn Any + Send>,
    ) -> Result<Prediction> {
        let context =
            oxserve_core::handler::own_context::<ListContext>(context, "image_segmenter")?;
        let out = outputs
            .get(self.output)
            .ok_or_else(|| EngineError::Internal("the model returned too few outputs".into()))?;
        let &[images, classes, height, width] = out.shape() else {
            return Err(EngineError::Internal(format!(
                "the segmenter's output has shape {:?}; expected [N, classes, H, W]",
                out.shape()
            )));
        };
        let values = floats(out)?;
        let plane = height * width;
        let (w32, h32) = (
            u32::try_from(width).map_err(|_| EngineError::Internal("mask too wide".into()))?,
            u32::try_from(height).map_err(|_| EngineError::Internal("mask too tall".into()))?,
        );
        let rows = (0..images).map(|i| {
            classify(
                &values[i * classes * plane..(i + 1) * classes * plane],
                classes,
                plane,
                self.softmax,
            )
        });
        if self.png {
            let masks = rows
                .map(|(class, _)| png(&class, w32, h32, classes))
                .collect::<Result<Vec<_>>>()?;
            if !context.list && masks.len() == 1 {
                let body = masks.into_iter().next().unwrap_or_default();
                return Ok(Prediction { body: body.into(), content_type: "image/png".into() });
            }
            let encoded: Vec<String> =
                masks.iter().map(|m| base64::engine::general_purpose::STANDARD.encode(m)).collect();
            return answer(encoded, true);
        }
        #[allow(clippy::cast_precision_loss)]
        let answers: Vec<Vec<Vec<[f32; 2]>>> = rows
            .map(|(class, prob)| {
                (0..height)
                    .map(|y| {
                        (0..width)
                            .map(|x| [class[y * width + x] as f32, prob[y * width + x]])
                            .collect()
                    })
                    .collect()
            })
            .collect();
        answer(answers, context.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_over_classes_per_pixel() {
        // Two classes over a 1x2 image: pixel 0 prefers class 1, pixel 1 class 0.
        let row = [0.0, 3.0, 2.0, 0.0];
        let (class, prob) = classify(&row, 2, 2, true);
        assert_eq!(class, vec![1, 0]);
        assert!(prob.iter().all(|&p| p > 0.85 && p < 1.0));
        let (_, prob) = classify(&row, 2, 2, false);
        assert_eq!(prob, vec![2.0, 3.0]);
    }

    #[test]
    fn png_mask_round_trips() {
        let bytes = png(&[0, 1, 2, 3, 255, 7], 3, 2, 256).expect("png");
        let decoded = image::load_from_memory(&bytes).expect("decode").to_luma8();
        assert_eq!(decoded.into_raw(), vec![0, 1, 2, 3, 255, 7]);
        let bytes = png(&[300, 1], 2, 1, 400).expect("png16");
        let decoded = image::load_from_memory(&bytes).expect("decode").to_luma16();
        assert_eq!(decoded.into_raw(), vec![300, 1]);
    }
}
