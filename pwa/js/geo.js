// Positions and map links. No tile maps: a place opens in the phone's own map app.
export const FIX_TIMEOUT_MS = 20000;
export const COARSE_M = 50; // UX: a fix worse than this is "coarse" and the rider is told
// The Geolocation API does not say where a fix came from; satellites give tens of metres or better,
// cell and Wi-Fi positioning rarely do. The server only records it, next to accuracy_m.
export const sourceOf = (accuracy) => (accuracy <= COARSE_M ? 'gps' : 'network');

// One fix: {lat, lon, accuracy_m, source, at}; rejects with {code: denied|unavailable|timeout|unsupported}.
export function getFix({ timeoutMs = FIX_TIMEOUT_MS, precise = true, maximumAge = 0 } = {}) {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) { reject({ code: 'unsupported' }); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({
        lat: p.coords.latitude, lon: p.coords.longitude,
        accuracy_m: Math.round(p.coords.accuracy * 10) / 10, source: sourceOf(p.coords.accuracy), at: p.timestamp,
      }),
      (e) => reject({ code: ['unsupported', 'denied', 'unavailable', 'timeout'][e.code] || 'unavailable' }),
      { enableHighAccuracy: precise, timeout: timeoutMs, maximumAge },
    );
  });
}

// geo: for Android's map picker; AMap (高德) with coordinate=wgs84 so Chinese maps, which draw in
// GCJ-02, shift the WGS-84 point to where it really is.
export function mapLinks(lat, lon, name = '') {
  const la = lat.toFixed(6);
  const lo = lon.toFixed(6);
  const label = encodeURIComponent(name);
  return {
    geo: `geo:${la},${lo}?q=${la},${lo}(${label})`,
    amap: `https://uri.amap.com/marker?position=${lo},${la}&coordinate=wgs84&name=${label}&callnative=1`,
  };
}
