// Photos are shrunk on the phone before they are stored or sent (riders pay for data): at most 1600 px
// on the long side, JPEG at 0.8, the camera's rotation applied to the pixels. Re-encoding also drops the
// original's EXIF (its GPS, the phone model) before anything leaves the phone.
export const MAX_SIDE = 1600;
export const QUALITY = 0.8;

async function decode(file) {
  try {
    return await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    // Engines without that option (or without createImageBitmap for this type): an <img> applies the
    // EXIF orientation itself.
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      return img;
    } finally {
      URL.revokeObjectURL(url);
    }
  }
}

export async function shrink(file) {
  const source = await decode(file);
  const width = source.width ?? source.naturalWidth;
  const height = source.height ?? source.naturalHeight;
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  canvas.getContext('2d').drawImage(source, 0, 0, canvas.width, canvas.height);
  source.close?.();
  const blob = await new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('encode'))), 'image/jpeg', QUALITY);
  });
  return { blob, before: file.size, after: blob.size, width: canvas.width, height: canvas.height };
}
